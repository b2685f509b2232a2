package planner

import (
	"math"
	"unicode/utf8"

	"github.com/reembed/reembed/corpus"
)

// partChunks is how many chunks of one chunking a document's results hold
// before they are handed on as a part (corpus.ScanStream), so that a large
// streamed document's chunks do not pile up.
const partChunks = 4096

// work chunks one document with every configuration. A streamed document
// is read once per configuration, its chunks handed on in parts of
// partChunks.
func (sc *docScanner) work(doc corpus.Document, part func(docResult) error) (docResult, error) {
	res := docResult{id: doc.ID, configs: make([]cfgResult, len(sc.chunkers)), empty: !doc.Streamed() && len(doc.Text) == 0}
	for i, ch := range sc.chunkers {
		var chunks []chunkInfo
		n, split, err := ch.ChunkDocument(&doc, func(index int, text []byte, tokens int) error {
			ci := chunkInfo{tokens: tokens}
			if !sc.exact {
				ci.runes = utf8.RuneCount(text)
			}
			if sc.done != nil && sc.done(doc.ID, index, text) {
				ci.reused = true
			}
			chunks = append(chunks, ci)
			if len(chunks) < partChunks {
				return nil
			}
			p := docResult{id: doc.ID, part: true, configs: make([]cfgResult, len(sc.chunkers))}
			p.configs[i].chunks = chunks
			chunks = nil
			return part(p)
		})
		if err != nil {
			return res, err
		}
		res.docTokens = n
		res.configs[i] = cfgResult{split: split, chunks: chunks}
	}
	if doc.Streamed() {
		res.empty = res.docTokens == 0 // a text of one byte or more has a token
	}
	res.bytes = doc.Bytes // a streamed document's, once read
	if res.empty {
		res.docTokens = 0
	}
	return res, nil
}

// addChunks adds a document's chunks (all or a part of them) to a model's
// figures and to the document's running totals.
func (acc *modelAcc) addChunks(id string, chunks []chunkInfo) {
	sh := acc.shardOf(id)
	for _, c := range chunks {
		t := int64(c.tokens)
		if !acc.model.Exact() {
			t = int64(math.Ceil(float64(c.runes) / acc.model.CharsPerToken))
		}
		if c.reused {
			acc.reused++
			acc.reusedTokens += t
			continue
		}
		acc.packer.Add(int(t))
		if sh != nil {
			sh.packer.Add(int(t))
		}
		acc.docChunks++
		acc.docTokens += t
	}
}

// endDocument closes a document's figures: its totals and the sums a
// sample's variance needs. It returns the chunks and tokens the document
// will send.
func (acc *modelAcc) endDocument(r docResult) (docChunks, docTokens int64) {
	docChunks, docTokens = acc.docChunks, acc.docTokens
	acc.docChunks, acc.docTokens = 0, 0
	acc.chunks += docChunks
	acc.tokens += docTokens
	if sh := acc.shardOf(r.id); sh != nil {
		sh.docs++
		sh.chunks += docChunks
		sh.tokens += docTokens
	}
	b := float64(r.bytes)
	acc.sumSqChunks += float64(docChunks) * float64(docChunks)
	acc.sumSqTokens += float64(docTokens) * float64(docTokens)
	acc.sumChunksBytes += float64(docChunks) * b
	acc.sumTokensBytes += float64(docTokens) * b
	acc.sumBytes += b
	acc.sumSqBytes += b * b
	if r.configs[acc.cfg].split {
		acc.split++
	}
	return docChunks, docTokens
}
