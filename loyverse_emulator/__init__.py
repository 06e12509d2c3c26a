"""A stateful Loyverse POS API emulator (a real HTTP server) for tests, benchmarks and the demo.

Start one with `server.EmulatorServer(...)`; script it with `admin.AdminClient`. See
docs/emulator.md.
"""
