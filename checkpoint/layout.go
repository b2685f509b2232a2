package checkpoint

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// ShardDir returns the directory, relative to the output root, where shard s
// writes its manifest and parts: "" (the root itself) when the job is not
// sharded, otherwise "shard-IIII-of-NNNN" (index 0-based, zero-padded to four
// digits; wider numbers are written in full).
func ShardDir(s Shard) string {
	if s.Count == 0 {
		return ""
	}
	return fmt.Sprintf("shard-%04d-of-%04d", s.Index, s.Count)
}

// PartName returns the store name of part number n (1-based) of shard s, such
// as "part-000042.parquet" or "shard-0002-of-0004/part-000042.parquet".
func PartName(s Shard, n int) string {
	return partPath(ShardDir(s), fmt.Sprintf("part-%06d.parquet", n))
}

// ManifestPath returns the store name of shard s's manifest.
func ManifestPath(s Shard) string { return partPath(ShardDir(s), ManifestName) }

type fileKind int

const (
	kindOther       fileKind = iota
	kindManifest             // manifest.json
	kindPart                 // part-NNNNNN.parquet, committed
	kindTemp                 // *.tmp*, an unfinished commit
	kindQuarantined          // part-NNNNNN.parquet.corrupt[-K], moved aside
)

var (
	shardDirRE = regexp.MustCompile(`^shard-([0-9]{4,})-of-([0-9]{4,})$`)
	partRE     = regexp.MustCompile(`^part-([0-9]{6,})\.parquet$`)
	numberedRE = regexp.MustCompile(`^part-([0-9]{6,})\.parquet\.`)
)

// fileName is a store name split into what the checkpoint cares about.
type fileName struct {
	dir    string // "" or a shard directory
	kind   fileKind
	number int // part number, for parts, temporary parts and quarantined parts
}

// classify parses a store name. Files outside the root and the shard
// directories are kindOther and ignored.
func classify(name string) fileName {
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if dir != "" && !shardDirRE.MatchString(dir) {
		return fileName{dir: dir, kind: kindOther}
	}
	fn := fileName{dir: dir}
	switch {
	case base == ManifestName:
		fn.kind = kindManifest
	case partRE.MatchString(base):
		fn.kind = kindPart
		fn.number = atoi(partRE.FindStringSubmatch(base)[1])
	case strings.Contains(base, ".tmp"):
		fn.kind = kindTemp
	case strings.Contains(base, ".parquet.corrupt"):
		fn.kind = kindQuarantined
	}
	if m := numberedRE.FindStringSubmatch(base); m != nil && fn.kind != kindPart {
		fn.number = atoi(m[1])
	}
	return fn
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0
	}
	return n
}
