package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"slices"
	"strings"
	"sync"
	"time"
)

// report is what one load run found.
type report struct {
	servers                      int
	writers, writerErrs, keyLost int
	incrs, incrErrs, incrLost    int
	finalCount                   int
	latencies                    []time.Duration // of the writers, sorted
	firstErr                     string
}

func (r *report) lost() bool {
	return r.writerErrs+r.keyLost+r.incrErrs+r.incrLost > 0
}

func (r *report) quantile(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return r.latencies[int(q*float64(len(r.latencies)-1))]
}

func (r *report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d overlapping writers of different keys over %d server(s): %d failed, %d keys lost; latency median %v, p99 %v\n",
		r.writers, r.servers, r.writerErrs, r.keyLost, r.quantile(0.5).Round(time.Microsecond), r.quantile(0.99).Round(time.Microsecond))
	fmt.Fprintf(&b, "%d concurrent increments: %d failed, %d lost (count %d)\n", r.incrs, r.incrErrs, r.incrLost, r.finalCount)
	if r.firstErr != "" {
		fmt.Fprintf(&b, "first failure: %s\n", r.firstErr)
	}
	return b.String()
}

// runLoad drives the servers at bases (one site: a cookie set by one is
// sent to all) with one browser's session.
func runLoad(ctx context.Context, bases []string, n int) (*report, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, err
	}
	c := &http.Client{Jar: jar, Timeout: 60 * time.Second}
	get := func(base, path string) (int, string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			return 0, "", err
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	rep := &report{servers: len(bases), writers: n, incrs: n}
	fail := func(what string, code int, body string, err error) {
		if rep.firstErr == "" {
			rep.firstErr = fmt.Sprintf("%s: status %d %q %v", what, code, strings.TrimSpace(body), err)
		}
	}
	// One session, one key nobody changes, and the count at 1.
	if code, body, err := get(bases[0], "/set?k=base&v=0"); err != nil || code != 200 {
		return nil, fmt.Errorf("starting the session on %s: status %d %q %v", bases[0], code, body, err)
	}
	if code, body, err := get(bases[0], "/incr"); err != nil || code != 200 {
		return nil, fmt.Errorf("first increment: status %d %q %v", code, body, err)
	}

	// Round 1: n blind writers, each its own key.
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			code, body, err := get(bases[i%len(bases)], fmt.Sprintf("/set?k=w%d&v=%d", i, i))
			lat[i] = time.Since(t0)
			if err != nil || code != 200 {
				mu.Lock()
				rep.writerErrs++
				fail(fmt.Sprintf("writer %d", i), code, body, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.Sort(lat)
	rep.latencies = lat
	for i := range n {
		_, body, err := get(bases[0], fmt.Sprintf("/get?k=w%d", i))
		if err != nil || strings.TrimSpace(body) != fmt.Sprint(i) {
			rep.keyLost++
		}
	}
	if _, body, _ := get(bases[0], "/get?k=base"); strings.TrimSpace(body) != "0" {
		rep.keyLost++
	}

	// Round 2: n atomic increments.
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body, err := get(bases[i%len(bases)], "/incr")
			if err != nil || code != 200 {
				mu.Lock()
				rep.incrErrs++
				fail(fmt.Sprintf("increment %d", i), code, body, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	_, body, err := get(bases[0], "/get?k=count")
	if err != nil {
		return nil, err
	}
	if rep.finalCount, err = parseCount(body); err != nil {
		return nil, fmt.Errorf("reading the count: %q: %w", body, err)
	}
	rep.incrLost = n - rep.incrErrs + 1 - rep.finalCount
	return rep, nil
}
