"""The serving side: DNS and the HTTP API, answering from a replica of the
compiled store. Nothing here fetches, generates or compiles."""
