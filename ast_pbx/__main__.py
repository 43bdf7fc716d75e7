from ast_pbx.cli import main

main()
