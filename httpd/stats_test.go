package httpd

import (
	"io"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type observation struct {
	o      Outcome
	status int
}

// observer records Config.Observe's calls.
type observer struct {
	mu  sync.Mutex
	got []observation
	max time.Duration
}

func (ob *observer) observe(o Outcome, status int, d time.Duration) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	ob.got = append(ob.got, observation{o, status})
	ob.max = max(ob.max, d)
	if d <= 0 {
		ob.got = append(ob.got, observation{NumOutcomes, -1}) // fails the comparison
	}
}

func (ob *observer) wait(t *testing.T, n int) []observation {
	t.Helper()
	waitFor(t, 5*time.Second, "observations", func() bool {
		ob.mu.Lock()
		defer ob.mu.Unlock()
		return len(ob.got) >= n
	})
	ob.mu.Lock()
	defer ob.mu.Unlock()
	return slices.Clone(ob.got)
}

// Observe is called once per response, after it is out, with where it
// came from: the cache, the disk, the upstream (whatever its status), or
// an error of this server's own; responses are counted by code.
func TestObserve(t *testing.T) {
	fx := newFixture(t)
	up := upstream(t)
	var ob observer
	s, addr := startServer(t, Config{Root: fx.root, CacheMax: 4 << 10, Proxy: up.URL, Dynamic: []string{"/api/"}, Observe: ob.observe})
	c := dialRaw(t, addr)
	reqs := []struct {
		path string
		want observation
	}{
		{"/small.bin", observation{OutcomeCached, 200}},
		{"/docs", observation{OutcomeCached, 301}},
		{"/big.bin", observation{OutcomeDisk, 200}},
		{"/nope", observation{OutcomeError, 404}},
		{"/api/x", observation{OutcomeProxied, 200}},
		{"/api/early", observation{OutcomeProxied, 413}},
	}
	var want []observation
	for _, r := range reqs {
		c.write("GET " + r.path + " HTTP/1.1\r\nHost: x\r\n\r\n")
		c.read("GET")
		want = append(want, r.want)
		// Observed after the response is out: wait, to keep the order.
		ob.wait(t, len(want))
	}
	if _, _, rc := roundTrip(t, addr, "BAD\x01LINE\r\n\r\n"); !rc.closedByServer(5 * time.Second) {
		t.Fatal("bad request: connection left open")
	}
	want = append(want, observation{OutcomeError, 400})
	if got := ob.wait(t, len(want)); !slices.Equal(got, want) {
		t.Errorf("observed %v,\nwant     %v", got, want)
	}
	if ob.max > 5*time.Second {
		t.Errorf("longest duration %v", ob.max)
	}

	st := s.Stats()
	wantCodes := map[int]uint64{200: 3, 301: 1, 404: 1, 413: 1, 400: 1}
	if !maps.Equal(st.Responses, wantCodes) || st.Status2xx != 3 || st.Status3xx != 1 || st.Status4xx != 3 || st.Status5xx != 0 {
		t.Errorf("Responses %v (2xx %d, 3xx %d, 4xx %d, 5xx %d), want %v", st.Responses, st.Status2xx, st.Status3xx, st.Status4xx, st.Status5xx, wantCodes)
	}
}

// A connection refused over MaxConns is observed as an error, 503.
func TestObserveRefused(t *testing.T) {
	fx := newFixture(t)
	var ob observer
	s, addr := startServer(t, Config{Root: fx.root, MaxConns: 1, Observe: ob.observe})
	c := dialRaw(t, addr)
	c.write("GET /small.bin HTTP/1.1\r\nHost: x\r\n\r\n")
	c.read("GET")
	if resp, _, _ := roundTrip(t, addr, "GET /small.bin HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 503 {
		t.Fatalf("over MaxConns: %d", resp.StatusCode)
	}
	got := ob.wait(t, 2)
	if !slices.Contains(got, observation{OutcomeError, 503}) || !slices.Contains(got, observation{OutcomeCached, 200}) {
		t.Errorf("observed %v, want a cached 200 and an error 503", got)
	}
	if st := s.Stats(); st.Responses[503] != 1 || st.Status5xx != 1 {
		t.Errorf("503s counted: %d (5xx %d)", st.Responses[503], st.Status5xx)
	}
}

// With Observe set, the cached path still allocates nothing.
func TestObserveAllocs(t *testing.T) {
	fx := newFixture(t)
	var n atomic.Int64
	_, addr := startServer(t, Config{Root: fx.root, Observe: func(o Outcome, status int, d time.Duration) { n.Add(int64(d)) }})
	c := dialRaw(t, addr)
	req := []byte("GET /small.bin HTTP/1.1\r\nHost: x\r\n\r\n")
	c.nc.Write(req)
	c.read("GET")
	c.nc.Write(req)
	buf := make([]byte, len(responseBytes(t, c)))
	if allocs := testing.AllocsPerRun(200, func() {
		c.nc.Write(req)
		if _, err := io.ReadFull(c.br, buf); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("%v allocations per observed request", allocs)
	}
}

func TestOutcomeString(t *testing.T) {
	var got []string
	for o := range NumOutcomes {
		got = append(got, o.String())
	}
	if want := []string{"cached", "disk", "proxied", "error"}; !slices.Equal(got, want) {
		t.Errorf("outcomes %q, want %q", got, want)
	}
}
