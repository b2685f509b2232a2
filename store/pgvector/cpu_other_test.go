//go:build !linux

package pgvector_test

import "time"

// clientCPU is not measured here (Linux only).
func clientCPU() time.Duration { return 0 }

// serverCPU is not measured here (Linux only).
func serverCPU(string) time.Duration { return 0 }
