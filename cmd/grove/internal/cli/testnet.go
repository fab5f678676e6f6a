package cli

import (
	"errors"

	"grove/testnet"
)

// cmdTestnet hands `grove testnet ...` to package testnet, which runs its
// own nodes in this process (no daemon, no home directory).
func (e *env) cmdTestnet(args []string) error {
	err := testnet.Run(e.ctx, args, e.stdout, e.stderr)
	if errors.Is(err, testnet.ErrUsage) {
		return usagef("%v", err)
	}
	return err
}
