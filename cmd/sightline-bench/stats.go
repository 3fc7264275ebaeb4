package main

// Order statistics of the benchmarks' samples: summary (n, median, p95, p99, min, max, mean in ms) by
// nearest-rank percentile.

import (
	"math"
	"sort"
	"time"
)

// summary holds order statistics of a sample, in milliseconds.
type summary struct {
	N      int     `json:"n"`
	Median float64 `json:"median_ms"`
	P95    float64 `json:"p95_ms"`
	P99    float64 `json:"p99_ms"`
	Min    float64 `json:"min_ms"`
	Max    float64 `json:"max_ms"`
	Mean   float64 `json:"mean_ms"`
}

func summarize(d []time.Duration) summary {
	if len(d) == 0 {
		return summary{}
	}
	ms := make([]float64, len(d))
	sum := 0.0
	for i, v := range d {
		ms[i] = float64(v) / float64(time.Millisecond)
		sum += ms[i]
	}
	sort.Float64s(ms)
	return summary{
		N: len(ms), Median: percentile(ms, 50), P95: percentile(ms, 95), P99: percentile(ms, 99),
		Min: ms[0], Max: ms[len(ms)-1], Mean: sum / float64(len(ms)),
	}
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}
