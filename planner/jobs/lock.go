package jobs

import "errors"

// ErrDataDirInUse is returned by [Open] when another process (or another
// Manager in this one) has the data directory open: two servers would run the
// same jobs twice.
var ErrDataDirInUse = errors.New("data directory is in use by another reembed serve")

// lockFileName is the file in the data directory that the lock is taken on.
const lockFileName = "lock"
