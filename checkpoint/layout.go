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
	kindTemp                 // TempPrefix*, an unfinished commit
	kindQuarantined          // part-NNNNNN.parquet.corrupt[-K], moved aside
)

// TempPrefix begins the name of every temporary file reembed makes in a
// checkpoint directory (".reembed-tmp-part-000042.parquet-123456"). Only such
// names, and the "part-NNNNNN.parquet.tmp-DIGITS" and
// "manifest.json.tmp-DIGITS" of earlier versions, are removed on resume: a
// user's "page.tmpl" or "notes.tmp.txt" is never touched.
const TempPrefix = ".reembed-tmp-"

var (
	shardDirRE = regexp.MustCompile(`^shard-([0-9]{4,})-of-([0-9]{4,})$`)
	partRE     = regexp.MustCompile(`^part-([0-9]{6,})\.parquet$`)
	numberedRE = regexp.MustCompile(`^(?:\.reembed-tmp-)?part-([0-9]{6,})\.parquet[.-]`)
	legacyTmp  = regexp.MustCompile(`^(?:part-[0-9]{6,}\.parquet|manifest\.json)\.tmp-[0-9]+$`)
)

// tempName returns the pattern of a temporary file for base, for os.CreateTemp.
func tempName(base string) string { return TempPrefix + base + "-*" }

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
	case strings.HasPrefix(base, TempPrefix) || legacyTmp.MatchString(base):
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
