//go:build !unix

package mls

func processCPUTime() int64 { return 0 }
