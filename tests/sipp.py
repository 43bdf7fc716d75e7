"""SIPp (Debian's sip-tester) as the third-party peer of SIP tests.

`Caller` is a citizen calling in through a trunk: SIPp sends the INVITE from the
trunk's address, presses the keys of an input written as for `astpbx simulate`
(`"w2 1 w1 1 9 * 0 3 #"`) in one DTMF mode — RFC 4733 events or inband tones
(pcaps of `tests.rtp`), or SIP INFO requests — then either hangs up or waits for the
engine to hang up. The SDP points Asterisk's audio at an `RtpSink`, so a test can
check what the caller heard.

Each scenario is generated for its call; the runs are sequential per local port.
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

from ast_pbx.core.simulator import Press, Wait, parse_input
from tests.rtp import Heard, RtpSink, dtmf_pcap
from tests.sandbox_fixture import free_port

SIPP = shutil.which("sipp") or "/usr/bin/sipp"
KEY_GAP_MS = 300  # between two keys: an RFC 4733 key lasts 160 ms + its end packets


def _headers(cseq: int, method: str, caller: str) -> str:
    return textwrap.dedent(f"""\
        Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
        From: "{caller}" <sip:{caller}@[local_ip]:[local_port]>;tag=[call_number]
        To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
        Call-ID: [call_id]
        CSeq: {cseq} {method}
        Contact: <sip:{caller}@[local_ip]:[local_port]>
        Max-Forwards: 70
        User-Agent: SIPp (astpbx tests)""")


def _request(method: str, cseq: int, caller: str, body: str = "", kind: str = "") -> str:
    content = f"Content-Type: {kind}\n" if kind else ""
    text = (
        f"{method} sip:[service]@[remote_ip]:[remote_port] SIP/2.0\n"
        f"{_headers(cseq, method, caller)}\n{content}Content-Length: [len]\n\n{body}"
    )
    retrans = ' retrans="500"' if method != "ACK" else ""
    return f"<send{retrans}><![CDATA[\n{text}\n]]></send>"


SDP = """\
v=0
o=sipp 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio {port} RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
"""

OK_TO_BYE = """<send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>"""


@dataclass(frozen=True)
class CallResult:
    ok: bool  # SIPp's verdict: every message as the scenario expects
    output: str  # SIPp's error log and output, for assertion messages
    heard: Heard


class Caller:
    """One SIPp user agent calling through the trunk from 127.0.0.1:`port`."""

    def __init__(self, target: str, port: int, workdir: Path, caller: str = "+79001112233"):
        self.target = target  # HOST:PORT of Asterisk's PJSIP transport
        self.port = port
        self.workdir = workdir
        self.caller = caller
        workdir.mkdir(parents=True, exist_ok=True)

    def scenario(self, input_text: str, dtmf: str, ends: str, rtp_port: int) -> str:
        """The XML of one call. `ends`: "remote" waits for the engine's BYE, "local"
        hangs up after the input."""
        steps = [
            _request("INVITE", 1, self.caller, SDP.format(port=rtp_port), "application/sdp"),
            '<recv response="100" optional="true"/>',
            '<recv response="180" optional="true"/>',
            '<recv response="183" optional="true"/>',
            '<recv response="200" rtd="true"/>',
            _request("ACK", 1, self.caller),
        ]
        cseq, presses = 1, 0
        for event in parse_input(input_text):
            if isinstance(event, Wait):
                steps.append(f'<pause milliseconds="{round(event.seconds * 1000)}"/>')
                continue
            steps.extend(self._key(event, dtmf, cseq + 1, presses))
            cseq += dtmf == "info"
            presses += 1
        if ends == "local":
            steps += [_request("BYE", cseq + 1, self.caller), '<recv response="200"/>']
        else:
            steps += ['<recv request="BYE"/>', OK_TO_BYE]
        body = "\n".join(steps)
        return f'<?xml version="1.0"?>\n<scenario name="caller">\n{body}\n</scenario>\n'

    def _key(self, press: Press, dtmf: str, cseq: int, presses: int) -> list[str]:
        if dtmf == "info":
            signal = f"Signal={press.key}\nDuration=160\n"
            return [
                _request("INFO", cseq, self.caller, signal, "application/dtmf-relay"),
                '<recv response="200"/>',
                f'<pause milliseconds="{KEY_GAP_MS}"/>',
            ]
        pcap = dtmf_pcap(self.workdir, press.key, dtmf, presses)
        return [
            f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>',
            f'<pause milliseconds="{KEY_GAP_MS + (300 if dtmf == "inband" else 0)}"/>',
        ]

    def call(
        self,
        number: str,
        input_text: str = "",
        *,
        dtmf: str = "rfc4733",
        ends: str = "remote",
        timeout: float = 90,
    ) -> CallResult:
        with RtpSink() as sink:
            path = self.workdir / f"call-{number}-{free_port()}.xml"
            path.write_text(self.scenario(input_text, dtmf, ends, sink.port), encoding="utf-8")
            errors = path.with_suffix(".errors.log")
            command = [
                SIPP,
                self.target,
                "-sf",
                str(path),
                "-s",
                number,
                "-i",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-mp",
                str(free_port()),
                "-cp",
                str(free_port()),
                "-m",
                "1",
                "-timeout",
                f"{round(timeout)}s",
                "-timeout_error",
                "-trace_err",
                "-error_file",
                str(errors),
                "-nostdin",
            ]
            run = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout + 30, check=False
            )
        log = errors.read_text(errors="replace") if errors.exists() else ""
        return CallResult(
            run.returncode == 0, f"{log}\n{run.stdout[-2000:]}{run.stderr}", sink.heard
        )
