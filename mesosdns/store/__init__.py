"""The compiled store: versions of the answers, from the builder to the servers.

`update` defines what one version changes and how it travels; `replica`
keeps a serving process's copy current, one whole version at a time;
`channel` carries the frames from the builder process to the servers.
"""
