package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/websession/websession/conformance"
)

// A Redis Cluster of three masters, no replicas, started by the tests on
// free loopback ports, in a temporary directory, and stopped by pid.

type cluster struct {
	dir     string
	persist bool // appendonly, fsync on every write
	nodes   []*node
}

type node struct {
	port int
	dir  string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

func (n *node) addr() string { return "127.0.0.1:" + strconv.Itoa(n.port) }

var (
	clustersMu sync.Mutex
	clusters   []*cluster
)

// stopClusters stops every cluster still running (TestMain calls it, in
// case a test's own cleanup did not run).
func stopClusters() {
	clustersMu.Lock()
	defer clustersMu.Unlock()
	for _, c := range clusters {
		c.stop()
	}
	clusters = nil
}

// requireBinaries finds redis-server and redis-cli, or skips (fails in CI).
func requireBinaries(tb testing.TB) {
	tb.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			msg := fmt.Sprintf("%s not found in PATH (apt-get install redis-server): %v", bin, err)
			if os.Getenv("CI") == "true" {
				tb.Fatal("CI=true: " + msg)
			}
			tb.Skip("SKIPPING: " + msg)
		}
	}
}

// freePort returns a port p such that p and p+10000 (the cluster bus)
// can be bound on loopback right now, or 0.
func freePort() int {
	for range 200 {
		p := 20000 + rand.IntN(20000)
		l1, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+10000))
		l1.Close()
		if err != nil {
			continue
		}
		l2.Close()
		return p
	}
	return 0
}

// startCluster starts a three-master cluster. With persist, every node
// keeps an append-only file fsynced on every write, so a node killed and
// restarted keeps every write it acknowledged. stopClusters (in TestMain)
// stops it, if the caller does not first.
func startCluster(persist bool) (*cluster, error) {
	dir, err := os.MkdirTemp("", "websession-redis-cluster-")
	if err != nil {
		return nil, err
	}
	c := &cluster{dir: dir, persist: persist}
	clustersMu.Lock()
	clusters = append(clusters, c)
	clustersMu.Unlock()
	for i := range 3 {
		n := &node{port: freePort(), dir: filepath.Join(dir, strconv.Itoa(i))}
		if n.port == 0 {
			return c, errors.New("no free pair of loopback ports found")
		}
		if err := os.Mkdir(n.dir, 0o700); err != nil {
			return c, err
		}
		c.nodes = append(c.nodes, n)
		if err := c.startNode(n); err != nil {
			return c, err
		}
	}
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.addr()
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		return c, fmt.Errorf("redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return c, c.waitOK()
}

// startTestCluster starts a private cluster for tb, stopped when tb ends.
func startTestCluster(tb testing.TB, persist bool) *cluster {
	tb.Helper()
	requireBinaries(tb)
	c, err := startCluster(persist)
	if c != nil {
		tb.Cleanup(c.stop)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// startNode starts (or restarts) n's redis-server and waits until it
// answers.
func (c *cluster) startNode(n *node) error {
	args := []string{
		"--port", strconv.Itoa(n.port), "--bind", "127.0.0.1",
		"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", "2000",
		"--dir", n.dir, "--logfile", "redis.log", "--save", "",
	}
	if c.persist {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	cmd := exec.Command("redis-server", args...)
	if err := cmd.Start(); err != nil {
		return err
	}
	n.cmd = cmd
	n.done = make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(n.done)
	cl := redis.NewClient(&redis.Options{Addr: n.addr(), MaxRetries: -1})
	defer cl.Close()
	return waitFor(n.addr()+" answering PING", func() error {
		select {
		case <-n.done:
			log, _ := os.ReadFile(filepath.Join(n.dir, "redis.log"))
			return fmt.Errorf("redis-server on %s exited: %s\n%s", n.addr(), cmd.ProcessState, log)
		default:
		}
		return cl.Ping(context.Background()).Err()
	})
}

// kill stops n's process with SIGKILL: no shutdown, no final save.
func (n *node) kill() {
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Kill()
	<-n.done
	n.cmd = nil
}

// stop kills every node and removes the cluster's directory.
func (c *cluster) stop() {
	for _, n := range c.nodes {
		n.kill()
	}
	os.RemoveAll(c.dir)
}

// waitOK waits until every node reports cluster_state:ok.
func (c *cluster) waitOK() error {
	for _, n := range c.nodes {
		cl := redis.NewClient(&redis.Options{Addr: n.addr(), MaxRetries: -1})
		err := waitFor(n.addr()+" reporting cluster_state:ok", func() error {
			info, err := cl.ClusterInfo(context.Background()).Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") {
				return fmt.Errorf("cluster info: %q", info)
			}
			return nil
		})
		cl.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// client returns a new ClusterClient of c, closed when tb ends.
func (c *cluster) client(tb testing.TB) *redis.ClusterClient {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.addr()
	}
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, ContextTimeoutEnabled: true})
	tb.Cleanup(func() { cl.Close() })
	return cl
}

// waitFor polls cond until it returns nil, for up to a minute: a process
// coming up offers no event to wait on.
func waitFor(what string, cond func() error) error {
	deadline := time.Now().Add(time.Minute)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sharedCluster is the cluster of the tests that need no private one,
// started on first use and stopped by TestMain.
var sharedCluster = sync.OnceValues(func() (*cluster, error) { return startCluster(false) })

func testCluster(tb testing.TB) *cluster {
	tb.Helper()
	requireBinaries(tb)
	c, err := sharedCluster()
	if err != nil {
		tb.Fatal("starting the test cluster: ", err)
	}
	return c
}

func clusterClient(c *cluster) func(testing.TB) redis.UniversalClient {
	return func(tb testing.TB) redis.UniversalClient { return c.client(tb) }
}

// TestConformanceCluster runs the whole suite against a three-master
// Redis Cluster, every NewStore a new ClusterClient.
func TestConformanceCluster(t *testing.T) {
	conformance.Run(t, harness(t, clusterClient(testCluster(t))))
}
