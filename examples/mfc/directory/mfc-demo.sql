-- A demo of the MFC information system (ИС МФЦ) for examples/mfc: applicants, the phone
-- numbers written in their cards, and their cases. The people are made up.
-- SQLite; `python3 examples/mfc/directory/create.py PATH` loads it (idempotent: tables
-- and rows are created only when missing, numbers bound on the operator's form stay).
-- The queries that read it are in examples/mfc/directory.yaml.

CREATE TABLE IF NOT EXISTS applicants (
    id          INTEGER PRIMARY KEY,
    last_name   TEXT NOT NULL,
    first_name  TEXT NOT NULL,
    middle_name TEXT,
    full_name   TEXT NOT NULL,
    sex         TEXT,
    birth_date  TEXT,               -- ISO date: YYYY-MM-DD
    address     TEXT
);

-- An applicant may have several numbers, and a number several applicants (a family's
-- home phone): the caller's name is said only when the number finds exactly one.
CREATE TABLE IF NOT EXISTS applicant_phones (
    applicant_id INTEGER NOT NULL REFERENCES applicants (id),
    phone        TEXT NOT NULL,     -- as the trunk delivers the caller: +7XXXXXXXXXX
    PRIMARY KEY (applicant_id, phone)
);
CREATE INDEX IF NOT EXISTS ix_applicant_phones_phone ON applicant_phones (phone);

-- Case numbers as the MFC writes them (19.03-2044) or plain digits (4567); the IVR
-- reads "19*03*2044" for the first kind (see case_status in directory.yaml).
CREATE TABLE IF NOT EXISTS cases (
    number       TEXT PRIMARY KEY,
    applicant_id INTEGER NOT NULL REFERENCES applicants (id),
    service      TEXT NOT NULL,
    status       TEXT NOT NULL,
    executor     TEXT,
    opened       TEXT NOT NULL      -- ISO date
);
CREATE INDEX IF NOT EXISTS ix_cases_applicant_id ON cases (applicant_id);

INSERT OR IGNORE INTO applicants
    (id, last_name, first_name, middle_name, full_name, sex, birth_date, address)
VALUES
    (1, 'Иванов', 'Иван', 'Иванович', 'Иванов Иван Иванович', 'Мужской', '1973-09-19',
        'г. Краснодар, ул. Красная, д. 10, кв. 5'),
    (2, 'Петрова', 'Анна', 'Сергеевна', 'Петрова Анна Сергеевна', 'Женский', '1985-04-12',
        'г. Краснодар, ул. Северная, д. 324, кв. 17'),
    (3, 'Смирнов', 'Алексей', 'Петрович', 'Смирнов Алексей Петрович', 'Мужской',
        '1990-11-03', 'г. Краснодар, ул. Ставропольская, д. 45'),
    (4, 'Кузнецова', 'Мария', 'Ивановна', 'Кузнецова Мария Ивановна', 'Женский',
        '1962-02-28', 'г. Анапа, ул. Горького, д. 7'),
    (5, 'Кузнецов', 'Пётр', 'Андреевич', 'Кузнецов Пётр Андреевич', 'Мужской', '1960-07-15',
        'г. Анапа, ул. Горького, д. 7'),
    (6, 'Иванова', 'Ольга', 'Николаевна', 'Иванова Ольга Николаевна', 'Женский',
        '1995-06-30', 'г. Краснодар, ул. Кубанская Набережная, д. 3, кв. 41');

-- Иванова Ольга has no number yet: find her by name on the operator's form and bind one.
INSERT OR IGNORE INTO applicant_phones (applicant_id, phone) VALUES
    (1, '+79896128555'),
    (2, '+79001112233'),
    (3, '+79181234567'),
    (4, '+79613201234'),
    (5, '+79613201234');

INSERT OR IGNORE INTO cases (number, applicant_id, service, status, executor, opened) VALUES
    ('19.03-2044', 1, 'Государственная регистрация ИП и ЮЛ', 'Открыто', NULL, '2019-10-29'),
    ('19.03-1756', 1, 'Государственная регистрация ИП и ЮЛ', 'Закрыто', 'Сидорова Е. В.',
        '2019-08-14'),
    ('4567', 2, 'Выдача паспорта гражданина РФ', 'В работе', 'Орлова Т. М.', '2026-02-20'),
    ('12345', 2, 'Замена водительского удостоверения', 'Готово к выдаче', 'Орлова Т. М.',
        '2026-02-02'),
    ('4568', 3, 'Регистрация по месту жительства', 'В работе', 'Белов Д. А.', '2026-02-25'),
    ('4570', 4, 'Назначение пенсии', 'Приостановлено', 'Сидорова Е. В.', '2026-01-15'),
    ('4571', 5, 'Выдача справки об отсутствии судимости', 'Закрыто', 'Белов Д. А.',
        '2025-12-01');

-- The staff accounts of the information system: the operator page signs users in with
-- `directory.queries.authenticate` against these hashes (argon2). Every demo account's
-- password is "demo-password"; the roles are in examples/mfc/users.yaml.
CREATE TABLE IF NOT EXISTS staff (
    login         TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL
);
INSERT OR IGNORE INTO staff (login, password_hash) VALUES
    ('mihail', '$argon2id$v=19$m=65536,t=3,p=4$zqsWwNGfemOjjgE2BV0NRA$uXdRRMzEAKVlDffdzjdV1cwd/N7xNofzxPRAHaaosfA'),
    ('321', '$argon2id$v=19$m=65536,t=3,p=4$QoD2EJrHbHMLy55ra2JiCA$vBCk1OK5vvhb/tt0+NNEhoLi/7bPI1M/derR5KRJXYY'),
    ('Balalaeva_E_A', '$argon2id$v=19$m=65536,t=3,p=4$wkV04ojiwoxAuiT1B337iw$U/YX4GlUygpaExBdpQkA2lue8DZ+ugzhzg2kESmB3RY'),
    ('new', '$argon2id$v=19$m=65536,t=3,p=4$WfL5DVVCtTYK4c02BJ/3Vw$R6LoqzLjVZ6TCq/Ue9JNqrA7Xd6eQ+cmuxwBD5En0t0'),
    ('oper_66', '$argon2id$v=19$m=65536,t=3,p=4$e0Tz7PYfkfHkCQ3A13UtiA$gJ5U7nLi1t8DUWTEcS4ktjVt2zszQdKxgmOsLwi5QQQ'),
    ('123', '$argon2id$v=19$m=65536,t=3,p=4$/KBOgMLAHySJNBcJ7zXB7w$ZA+Yc3CBwuBI9a/gDof72k9bFRjmov2UTvR8Eh/6t9g'),
    ('222', '$argon2id$v=19$m=65536,t=3,p=4$nm4Kj6kNUp6p4qtvw7+o1w$0b+jR7BGM563dgSkGCrUcmOuv5l7Cq/jV5clzZRWQyM'),
    ('torchinsky', '$argon2id$v=19$m=65536,t=3,p=4$/RoVKOFOBLaE83pM715RLg$lC+jo5P/PEdxyjYL572LhiyXcWopeF/UzZaAmi8/kAQ');
