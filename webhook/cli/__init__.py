"""The command line: argv to exit code. `podgate check`, `fix`, the report
formats, manifest reading, `podgate test`, `policies`, and the commands that
start a server or an audit. The top layer: nothing imports it."""
