"""The system supervisor: the root half of the agent (issue 15).

`vigil agent supervise` runs as root (installer/linux/systemd/vigil-supervisor.service). It owns
the device credential, the trust anchor and the signed policy in system paths (store.py), finds
the graphical sessions (sessions.py), starts `vigil agent run` in each as that user and restarts
it when it dies (service.py), serves the session agents over a local Unix socket (server.py,
client.py, protocol.py), uploads their sealed events with the device credential (agent.sync),
and reports tamper as sealed events of category ``tamper`` (tamper.py). docs/agent.md has the
picture; the session agent itself is the rest of the agent package, unchanged but for where its
policy and its uplink come from.
"""
