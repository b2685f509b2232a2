package planner

import (
	"fmt"
	"sync/atomic"

	"github.com/reembed/reembed/checkpoint"
)

// DocIDMatch says how many of a checkpoint's doc_ids the corpus read holds:
// when almost none match, the corpus roots (or how they were given) changed,
// and every chunk would be re-priced and re-embedded under new IDs.
type DocIDMatch struct {
	// Checkpointed is the number of distinct doc_ids in the checkpoint.
	Checkpointed int `json:"checkpointed_doc_ids"`
	// Matched is how many of them the corpus holds.
	Matched int `json:"matching_doc_ids"`
}

// Warning returns "0 of 2326 checkpointed doc_ids match: did the corpus roots
// change?" when fewer than a tenth of the checkpoint's doc_ids are in the
// corpus, or "".
func (m DocIDMatch) Warning() string {
	if m.Checkpointed == 0 || m.Matched*10 >= m.Checkpointed {
		return ""
	}
	return fmt.Sprintf("%d of %d checkpointed doc_ids match: did the corpus roots change?", m.Matched, m.Checkpointed)
}

// idMatcher records which checkpointed doc_ids the corpus holds. see is safe
// for concurrent use (the scan's workers call it).
type idMatcher struct {
	ids map[string]*atomic.Bool
}

func newIDMatcher(ix *checkpoint.Index) *idMatcher {
	m := &idMatcher{ids: map[string]*atomic.Bool{}}
	for k := range ix.All() {
		if m.ids[k.DocID] == nil {
			m.ids[k.DocID] = new(atomic.Bool)
		}
	}
	return m
}

func (m *idMatcher) see(docID string) {
	if b := m.ids[docID]; b != nil {
		b.Store(true)
	}
}

func (m *idMatcher) result() DocIDMatch {
	r := DocIDMatch{Checkpointed: len(m.ids)}
	for _, b := range m.ids {
		if b.Load() {
			r.Matched++
		}
	}
	return r
}

// matchingDone wraps done so that it also records the documents it is asked
// about.
func (m *idMatcher) matchingDone(done func(string, int, []byte) bool) func(string, int, []byte) bool {
	return func(docID string, index int, text []byte) bool {
		m.see(docID)
		return done(docID, index, text)
	}
}
