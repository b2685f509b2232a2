package checkpointtest_test

import (
	"testing"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/checkpoint/checkpointtest"
)

func TestMem(t *testing.T) {
	checkpointtest.TestStore(t, func(*testing.T) checkpoint.Store { return checkpointtest.NewMem() })
}

func TestDir(t *testing.T) {
	checkpointtest.TestStore(t, func(t *testing.T) checkpoint.Store { return checkpoint.NewDir(t.TempDir()) })
}
