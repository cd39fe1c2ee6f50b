"""The builder: everything that depends only on the cluster state.

Fetching and decoding the state (or following the event stream), diffing it
against the previous one, generating the records and compiling the answers
of the names that changed, and publishing each change as a versioned
`mesosdns.store.update.Update`. In a server it runs in a process of its own,
so that none of this work runs where queries are answered.
"""
