//go:build race

package checkpoint

// raceEnabled: the race detector's checkptr turns parquet-go's unsafe.Slice
// on hostile bytes into a fatal error instead of a recoverable panic.
const raceEnabled = true
