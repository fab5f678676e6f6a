// Package search compares the store's Pebble-backed full-text search with
// bleve on the same generated corpus (grove/store/searchcorpus). It is a
// separate module so that bleve never enters the main module.
//
// Run: cd bench/search && go test -run '^$' -bench . -benchtime 1x -count 5
// for indexing (one full corpus per iteration); the query benchmarks report
// p50 and p99 latency over their iterations, so give them more, e.g.
// -bench Query -benchtime 2000x.
package search
