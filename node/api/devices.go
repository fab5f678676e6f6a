package api

import (
	"context"
	"encoding/json"
	"time"
)

// Devices is implemented by a Service whose device belongs to an account
// (package account): link a new device, list the account's devices,
// revoke one, back the account up. Serve answers these methods with
// CodeUnavailable for a Service without it.
type Devices interface {
	// DeviceLink makes a one-time link code for a new device of this
	// account (grove init --link CODE on it).
	DeviceLink(ctx context.Context) (LinkCode, error)
	// DeviceList lists the account's devices known to this device.
	DeviceList(ctx context.Context) ([]Device, error)
	// DeviceRevoke revokes device (an ID, an ID prefix or a device name)
	// for the account: removes it from every group and tells members.
	DeviceRevoke(ctx context.Context, device string) (Device, error)
	// BackupCreate writes an age-encrypted backup of the account and its
	// history to req.Path.
	BackupCreate(ctx context.Context, req BackupRequest) (BackupResult, error)
}

// LinkCode is a one-time code for linking a device.
type LinkCode struct {
	Code    string    `json:"code"`
	Expires time.Time `json:"expires"`
}

// Device is one device of the account.
type Device struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Fingerprint string    `json:"fingerprint"`
	PeerID      string    `json:"peer_id"`
	Created     time.Time `json:"created"`
	Self        bool      `json:"self,omitempty"`
	Revoked     bool      `json:"revoked,omitempty"`
	Online      bool      `json:"online,omitempty"`
	LastSeen    time.Time `json:"last_seen,omitzero"`
	Groups      int       `json:"groups"` // groups of this device in which it is a member
}

// BackupRequest asks for a backup.
type BackupRequest struct {
	Path       string `json:"path"`
	Passphrase string `json:"passphrase"`
	// WorkFactor is scrypt's log2(N); 0 is age's default. Tests lower it.
	WorkFactor int `json:"work_factor,omitempty"`
}

// BackupResult says what a backup holds.
type BackupResult struct {
	Path     string `json:"path"`
	Messages int    `json:"messages"`
	Groups   int    `json:"groups"`
	Devices  int    `json:"devices"`
}

// Events of devices.
const (
	EventDeviceLinked  EventKind = "device_linked"  // a device was linked to this account; Detail: name and comparison string
	EventDeviceRevoked EventKind = "device_revoked" // a device of this account, or this device, was revoked
)

const (
	methodDeviceLink   = "device_link"
	methodDeviceList   = "device_list"
	methodDeviceRevoke = "device_revoke"
	methodBackupCreate = "backup_create"
)

type deviceParams struct {
	Device string `json:"device"`
}

func devicesOf(svc Service) (Devices, error) {
	d, ok := svc.(Devices)
	if !ok {
		return nil, Errorf(CodeUnavailable, "this device has no account")
	}
	return d, nil
}

func init() {
	handlers[methodDeviceLink] = handler{fn: func(ctx context.Context, svc Service, _ json.RawMessage, _ *stream) (any, error) {
		d, err := devicesOf(svc)
		if err != nil {
			return nil, err
		}
		return d.DeviceLink(ctx)
	}}
	handlers[methodDeviceList] = handler{fn: func(ctx context.Context, svc Service, _ json.RawMessage, _ *stream) (any, error) {
		d, err := devicesOf(svc)
		if err != nil {
			return nil, err
		}
		ds, err := d.DeviceList(ctx)
		return nonNil(ds), err
	}}
	handlers[methodDeviceRevoke] = handler{fn: func(ctx context.Context, svc Service, raw json.RawMessage, _ *stream) (any, error) {
		var p deviceParams
		if err := decodeParams(raw, &p); err != nil {
			return nil, err
		}
		d, err := devicesOf(svc)
		if err != nil {
			return nil, err
		}
		return d.DeviceRevoke(ctx, p.Device)
	}}
	handlers[methodBackupCreate] = handler{fn: func(ctx context.Context, svc Service, raw json.RawMessage, _ *stream) (any, error) {
		var p BackupRequest
		if err := decodeParams(raw, &p); err != nil {
			return nil, err
		}
		d, err := devicesOf(svc)
		if err != nil {
			return nil, err
		}
		return d.BackupCreate(ctx, p)
	}}
}

var _ Devices = (*Client)(nil)

// DeviceLink implements Devices.
func (c *Client) DeviceLink(ctx context.Context) (LinkCode, error) {
	var out LinkCode
	err := c.call(ctx, methodDeviceLink, struct{}{}, &out)
	return out, err
}

// DeviceList implements Devices.
func (c *Client) DeviceList(ctx context.Context) ([]Device, error) {
	var out []Device
	err := c.call(ctx, methodDeviceList, struct{}{}, &out)
	return out, err
}

// DeviceRevoke implements Devices.
func (c *Client) DeviceRevoke(ctx context.Context, device string) (Device, error) {
	var out Device
	err := c.call(ctx, methodDeviceRevoke, deviceParams{Device: device}, &out)
	return out, err
}

// BackupCreate implements Devices.
func (c *Client) BackupCreate(ctx context.Context, req BackupRequest) (BackupResult, error) {
	var out BackupResult
	err := c.call(ctx, methodBackupCreate, req, &out)
	return out, err
}
