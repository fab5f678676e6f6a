package api

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestErrorMatchesByCode(t *testing.T) {
	err := fmt.Errorf("removing: %w", Errorf(CodeForbidden, "only admins may remove members"))
	if !errors.Is(err, ErrForbidden) {
		t.Fatal("wrapped forbidden error does not match ErrForbidden")
	}
	if errors.Is(err, ErrNotFound) {
		t.Fatal("forbidden error matches ErrNotFound")
	}
	if CodeOf(err) != CodeForbidden {
		t.Fatalf("CodeOf = %q", CodeOf(err))
	}
	if CodeOf(context.DeadlineExceeded) != CodeTimeout || CodeOf(errors.New("x")) != CodeInternal {
		t.Fatal("CodeOf fallback codes wrong")
	}
}
