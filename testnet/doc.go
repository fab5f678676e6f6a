// Package testnet runs many real Grove nodes on one machine and plays
// scenarios against them: chat, concurrent commits, partition and heal, a
// node offline and resyncing, churn and scale. Each node is a full
// node.Node with a real libp2p host listening on 127.0.0.1 only and a real
// Pebble store in a temporary directory; the nodes are wired to each other
// explicitly (no bootstrap peers, no DHT, no mDNS outside the
// network-namespace mode), so a run never touches the outside network.
//
// A run produces a Report (sent, delivered, expected, lost, duplicates
// shown to users, send-to-stored latency percentiles, epochs, forks
// resolved, convergence) that `grove testnet run` prints as a human summary
// or as one JSON object. Demo plays the narrated five-node walk-through
// behind `make demo`.
//
// With Processes (`--processes`) every node is its own process instead:
// `grove testnet node`, which runs a node like `grove up` (Pebble in its
// home, the local API on home/grove.sock) with the testnet's timing. The
// cluster drives each one through an api.Client on its socket, as the CLI
// drives a daemon, and can stop it (SIGTERM), kill it (SIGKILL: the crash
// scenario) and restart it on the same home.
//
// With Processes.Netns (`--netns`, root only) each node process runs in
// its own network namespace, linked by a veth pair to a bridge in one more
// namespace the run creates: separate virtual hosts on a private LAN that
// find each other by mDNS only, optionally with tc netem delay and loss on
// every link. Nothing is added to the machine's own network namespace, and
// the run deletes its namespaces when it ends, also on failure.
//
// Faults are injected below the node, in a p2p.Network wrapper: a
// partition makes each node ignore gossip forwarded by, and refuse streams
// to and from, peers on the other side, which is what a real network split
// looks like to the node (messages are not seen and not forwarded); a node
// process gets the partition as a control line on its stdin. Offline
// nodes are closed and restarted on the same home directory.
//
// The chaos scenario (RunChaos, `--scenario chaos --netns`) goes further:
// every node is a real `grove up` daemon with its own GROVE_HOME, default
// protocol timing and its own namespace, driven only through its local
// API socket, while a seeded schedule takes links down, partitions the LAN
// (links moved onto a second bridge), drops packets at random (nftables),
// throttles links (tc tbf; netem delay only where the kernel has it),
// SIGKILLs and restarts daemons, and members send, rotate, are removed and
// invited back. Its ChaosReport counts acknowledged sends, losses,
// duplicates, reconnects and the time to converge after the last heal.
// Its namespaces carry the run's process id, so that a later run deletes
// those a killed run left behind.
//
// It is a test and measurement tool, not part of a device: nothing in the
// daemon imports it, and its timing knobs (Timing) are far shorter than a
// real deployment's.
package testnet
