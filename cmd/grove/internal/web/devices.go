package web

import (
	"net/http"

	"grove/node/api"
)

// devices returns the device's account API (link, list, revoke), or an
// error a person understands.
func (s *Server) devices() (api.Devices, error) {
	d, ok := s.svc.(api.Devices)
	if !ok {
		return nil, api.Errorf(api.CodeUnavailable, "this daemon has no accounts, so no devices to list or link")
	}
	return d, nil
}

// deviceRoutes registers the Settings screen's endpoints: the account's
// devices and the read-receipts switch (docs/API.md). A backup is not
// offered here: it writes a file at a path on this machine, which the
// CLI (grove backup create) asks for with a passphrase typed twice.
func (s *Server) deviceRoutes() {
	s.handle("GET /api/devices", func(r *http.Request) (any, error) {
		d, err := s.devices()
		if err != nil {
			return nil, err
		}
		ds, err := d.DeviceList(r.Context())
		return nonNil(ds), err
	})
	s.handle("POST /api/devices/link", func(r *http.Request) (any, error) {
		d, err := s.devices()
		if err != nil {
			return nil, err
		}
		return d.DeviceLink(r.Context())
	})
	// {id} is a device id from the list; the daemon refuses this
	// device's own.
	s.handle("POST /api/devices/{id}/revoke", func(r *http.Request) (any, error) {
		d, err := s.devices()
		if err != nil {
			return nil, err
		}
		return d.DeviceRevoke(r.Context(), r.PathValue("id"))
	})
	s.handle("POST /api/receipts", func(r *http.Request) (any, error) {
		var p struct {
			On *bool `json:"on"`
		}
		if err := decode(r, &p); err != nil {
			return nil, err
		}
		// A body without "on" must not turn receipts off by default.
		if p.On == nil {
			return nil, badRequest(`say "on": true or false`)
		}
		c, ok := s.svc.(api.Conversations)
		if !ok {
			return nil, api.Errorf(api.CodeUnavailable, "this daemon cannot switch read receipts")
		}
		if err := c.SetReceipts(r.Context(), *p.On); err != nil {
			return nil, err
		}
		return struct {
			On bool `json:"on"`
		}{*p.On}, nil
	})
}
