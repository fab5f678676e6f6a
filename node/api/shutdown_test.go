package api_test

import (
	"context"
	"errors"
	"testing"

	"grove/node/api"
	"grove/node/api/apitest"
)

// stoppable is a Service that records Shutdown calls.
type stoppable struct {
	*apitest.Fake
	stopped chan struct{}
}

func (s *stoppable) Shutdown(ctx context.Context) error {
	close(s.stopped)
	return nil
}

func TestShutdown(t *testing.T) {
	ctx := context.Background()
	t.Run("service cannot stop", func(t *testing.T) {
		c := setup(t, apitest.New("alice"))
		if err := c.Shutdown(ctx); !errors.Is(err, api.ErrUnavailable) || err.Error() != "this daemon cannot be stopped through its API" {
			t.Errorf("Shutdown without Stopper: %v", err)
		}
	})
	t.Run("service stops", func(t *testing.T) {
		s := &stoppable{Fake: apitest.New("bob"), stopped: make(chan struct{})}
		c := setup(t, s)
		if err := c.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		select {
		case <-s.stopped:
		default:
			t.Error("Shutdown did not reach the service")
		}
	})
}
