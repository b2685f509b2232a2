//go:build !unix && !windows

package jobs

import (
	"fmt"
	"os"
	"path/filepath"
)

// lockDataDir opens DIR/lock without locking it: this platform has no file
// lock the package uses, so two servers on one data directory are not
// detected here. Run one server per data directory.
func lockDataDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFileName), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("jobs: opening the data directory lock: %w", err)
	}
	return f, nil
}
