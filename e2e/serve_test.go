package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/xhttpd/xhttpd/testbed"
)

// curl in the client namespace fetches each file over IPv4 and IPv6; the
// bytes on disk after the download are the bytes served.
func TestCurlFetchesFiles(t *testing.T) {
	tb, s, _ := serve(t)

	out := t.TempDir()
	for _, host := range []string{"198.18.0.1", "[2001:2::1]"} {
		for _, path := range []string{"/1k.bin", "/1m.bin"} {
			dst := filepath.Join(out, "got")
			url := "http://" + host + path
			cmd := tb.ClientCmd(context.Background(), "curl", "-sS", "-g", "--fail", "--max-time", "20", "-o", dst, url)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("curl %s: %v\n%s", url, err, b)
			}
			got, err := os.ReadFile(dst)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, s.files[path]) {
				t.Fatalf("curl %s: got %d bytes, differing from the %d on disk", url, len(got), len(s.files[path]))
			}
		}
	}
}

// 1,000 requests over 50 concurrent keep-alive connections: every one a 200
// with the right body.
func TestKeepAliveConcurrent(t *testing.T) {
	tb, s, _ := serve(t)
	fetchConcurrently(t, tb, s, 50, 20, "198.18.0.1", "[2001:2::1]")
}

// fetchConcurrently fetches /1k.bin perConn times on each of conns
// keep-alive connections at once, connection i from hosts[i%len(hosts)]:
// every request must be a 200 with the right body, all within a minute.
func fetchConcurrently(t *testing.T, tb *testbed.Testbed, s *site, conns, perConn int, hosts ...string) {
	t.Helper()
	client := tb.ClientHTTP()
	client.Transport.(*http.Transport).MaxConnsPerHost = conns
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		wg.Go(func() {
			for range perConn {
				if err := fetch(ctx, client, "http://"+hosts[i%len(hosts)]+"/1k.bin", s.files["/1k.bin"]); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func fetch(ctx context.Context, c *http.Client, url string, want []byte) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: reading body: %w", url, err)
	}
	if resp.StatusCode != 200 || !bytes.Equal(body, want) {
		return fmt.Errorf("GET %s: status %d, %d bytes (want 200, %d bytes)", url, resp.StatusCode, len(body), len(want))
	}
	return nil
}
