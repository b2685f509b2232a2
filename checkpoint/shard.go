package checkpoint

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"
)

// Sharding, in one place (DESIGN §10): a corpus is split into Count shards by
// [ShardOf] of each doc_id; shard i of N is "i/N" on the command line
// ([ParseShard]), embeds the documents [Shard.Keep] keeps, and writes below
// [ShardDir] of the checkpoint, where [OnlyShard] shows it alone.

// Shard says which part of a sharded job (DESIGN §10) a directory belongs to.
// Index is 0-based (a Kubernetes JOB_COMPLETION_INDEX) and below Count; Count 0
// means the job is not sharded.
type Shard struct {
	Index int `json:"index"`
	Count int `json:"count"`
}

// Validate reports an impossible shard.
func (s Shard) Validate() error {
	if s.Count < 0 || s.Index < 0 || (s.Count == 0 && s.Index != 0) || (s.Count > 0 && s.Index >= s.Count) {
		return fmt.Errorf("invalid shard %d/%d: want 0 <= index < count, or count 0 for unsharded", s.Index, s.Count)
	}
	return nil
}

// ShardOf returns the shard, in [0, count), that owns a document: FNV-1a 64
// of the doc_id (its UTF-8 bytes) modulo count. The hash is stable across
// machines, versions and runs, so every shard process agrees on the split.
func ShardOf(docID string, count int) int {
	if count <= 1 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(docID))
	return int(h.Sum64() % uint64(count))
}

// Keep returns a document filter (corpus.Options.Keep) that keeps the
// documents of shard s ([ShardOf] of the doc_id) that prev, if not nil, also
// keeps. A zero s (Count 0) keeps what prev keeps. A rebuild of shard s and
// an estimate of it use the same filter, so the estimate prices exactly what
// that shard embeds.
func (s Shard) Keep(prev func(docID string) bool) func(docID string) bool {
	if s.Count == 0 {
		return prev
	}
	return func(id string) bool { return ShardOf(id, s.Count) == s.Index && (prev == nil || prev(id)) }
}

// ParseShard parses "i/N" (0 <= i < N); "" is the zero Shard (unsharded).
func ParseShard(text string) (Shard, error) {
	if text == "" {
		return Shard{}, nil
	}
	var s Shard
	if _, err := fmt.Sscanf(text, "%d/%d", &s.Index, &s.Count); err != nil || s.Count < 1 || s.Index < 0 || s.Index >= s.Count {
		return Shard{}, fmt.Errorf("%q: want i/N with 0 <= i < N, e.g. 0/4", text)
	}
	return s, nil
}

// OnlyShard shows one shard of a checkpoint: its List returns only the files
// below [ShardDir] of s, so that a verify of shard i/N checks that shard's
// parts against its documents without counting the other shards' rows. The
// zero Shard shows the whole store.
func OnlyShard(st Store, s Shard) Store {
	if s.Count == 0 {
		return st
	}
	return shardStore{Store: st, dir: ShardDir(s)}
}

type shardStore struct {
	Store
	dir string
}

func (s shardStore) List(ctx context.Context) ([]FileInfo, error) {
	files, err := s.Store.List(ctx)
	if err != nil {
		return nil, err
	}
	out := files[:0]
	for _, f := range files {
		if strings.HasPrefix(f.Name, s.dir+"/") {
			out = append(out, f)
		}
	}
	return out, nil
}
