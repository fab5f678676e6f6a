package api

import (
	"context"
	"encoding/json"
)

// Accounts is implemented by a Service whose device belongs to an account
// and can rotate its key (package account, doc.go). Serve answers these
// methods with CodeUnavailable for a Service without it.
type Accounts interface {
	// AccountRotate replaces the account key by a new one: the account's
	// devices that are not revoked are kept and get the new key, the
	// groups learn the rotation, and certificates made with the old key
	// for any other device are refused from then on.
	AccountRotate(ctx context.Context) (AccountRotation, error)
}

// AccountRotation says what a rotation did.
type AccountRotation struct {
	Old     string `json:"old"` // the replaced key's fingerprint
	New     string `json:"new"` // the new key's fingerprint
	Seq     uint64 `json:"seq"`
	Devices int    `json:"devices"` // devices kept
}

// EventAccountRotated: this account's key was rotated, here or by
// another device of the account; Detail: the new key's fingerprint.
const EventAccountRotated EventKind = "account_rotated"

const methodAccountRotate = "account_rotate"

func accountsOf(svc Service) (Accounts, error) {
	a, ok := svc.(Accounts)
	if !ok {
		return nil, Errorf(CodeUnavailable, "this device cannot rotate an account key")
	}
	return a, nil
}

func init() {
	handlers[methodAccountRotate] = handler{fn: func(ctx context.Context, svc Service, _ json.RawMessage, _ *stream) (any, error) {
		a, err := accountsOf(svc)
		if err != nil {
			return nil, err
		}
		return a.AccountRotate(ctx)
	}}
}

var _ Accounts = (*Client)(nil)

// AccountRotate implements Accounts.
func (c *Client) AccountRotate(ctx context.Context) (AccountRotation, error) {
	var out AccountRotation
	err := c.call(ctx, methodAccountRotate, struct{}{}, &out)
	return out, err
}
