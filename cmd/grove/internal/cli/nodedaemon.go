package cli

import (
	"grove/node"
	"grove/p2p"
)

// initListen is where init's short-lived host listens: it must listen
// somewhere to start, and loopback exposes nothing.
var initListen = []string{"/ip4/127.0.0.1/tcp/0"}

// NodeDaemon creates the real daemon, a *node.Node, with the node's
// default protocol parameters.
func NodeDaemon(cfg DaemonConfig) (Daemon, error) { return newNodeDaemon(cfg, nil) }

// newNodeDaemon creates a *node.Node; tune, if set, adjusts its config
// (tests shorten finality so that a join does not take minutes).
func newNodeDaemon(cfg DaemonConfig, tune func(*node.Config)) (Daemon, error) {
	listen := cfg.Listen
	if len(listen) == 0 {
		listen = initListen
	}
	nc := node.Config{
		Home:         cfg.Home,
		Name:         cfg.Name,
		Logger:       cfg.Logger,
		StoreKey:     cfg.StoreKey,
		DeviceName:   cfg.DeviceName,
		Link:         cfg.Link,
		LinkProgress: cfg.LinkProgress,
		Restore:      cfg.Restore,
		P2P: p2p.Config{
			Listen:         listen,
			BootstrapPeers: cfg.Bootstrap,
			// Rendezvous through the DHT needs somewhere to start from;
			// without bootstrap peers, invite codes carry addresses.
			EnableDHT:  len(cfg.Bootstrap) > 0,
			EnableMDNS: cfg.MDNS,
		},
	}
	if tune != nil {
		tune(&nc)
	}
	n, err := node.New(nc)
	if err != nil {
		return nil, err
	}
	return nodeDaemon{n}, nil
}

type nodeDaemon struct{ *node.Node }

// Metrics exports the node's counters; they are counts only, never
// plaintext or identities.
func (d nodeDaemon) Metrics() []Metric {
	m := d.Node.Metrics()
	r := d.Node.ReachMetrics()
	return []Metric{
		{"grove_messages_in_total", "MLS messages processed from the network or sync.", "counter", float64(m.MessagesIn)},
		{"grove_messages_out_total", "MLS messages this device published.", "counter", float64(m.MessagesOut)},
		{"grove_epochs_total", "Canonical epochs applied.", "counter", float64(m.Epochs)},
		{"grove_forks_resolved_total", "Fork resolutions that undid at least one epoch.", "counter", float64(m.Forks)},
		{"grove_resyncs_total", "Completed sync exchanges.", "counter", float64(m.Resyncs)},
		{"grove_resync_last_seconds", "Duration of the last sync exchange.", "gauge", m.LastResync.Seconds()},
		{"grove_groups", "Groups this device is a member of.", "gauge", float64(m.Groups)},
		{"grove_peers", "Connected peers.", "gauge", float64(m.Peers)},
		{"grove_gossip_mesh_peers", "GossipSub mesh links summed over groups.", "gauge", float64(m.MeshPeers)},
		{"grove_group_reconnects_total", "Times a group got a reachable member back after having none, summed over groups.", "counter", float64(r.Reconnects)},
		{"grove_groups_cut_off", "Groups with other members of which none is reachable now.", "gauge", float64(r.CutOffGroups)},
	}
}
