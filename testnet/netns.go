package testnet

// Netns configures the network-namespace mode (not yet implemented).
type Netns struct{}

// netLab is the set of network namespaces of one run.
type netLab struct{ service string }

type labHost struct{ ns, ip string }

func (l *netLab) host(name string) (labHost, error) { return labHost{}, ErrNeedsProcesses }

func (l *netLab) Close() error { return nil }
