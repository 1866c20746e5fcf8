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
	session "github.com/websession/websession/core"
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
	opts := []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"}
	if c.persist {
		opts = append(opts, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		opts = append(opts, "--appendonly", "no")
	}
	return n.start(opts...)
}

// start runs redis-server for n, on its port on loopback, in its directory
// with its log there and no snapshots, plus opts, and waits until it
// answers PING.
func (n *node) start(opts ...string) error {
	args := append([]string{"--port", strconv.Itoa(n.port), "--bind", "127.0.0.1",
		"--dir", n.dir, "--logfile", "redis.log", "--save", ""}, opts...)
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

// TestClusterNodeRestart kills a master of a persistent cluster (no
// replicas) under a store in use and starts it again: calls fail with an
// error while its slots are down, and once it is back the same store and
// ClusterClient serve every session, with every acknowledged write.
func TestClusterNodeRestart(t *testing.T) {
	c := startTestCluster(t, true)
	cl := c.client(t)
	s := testStore(t, cl)
	ctx := testCtx(t)
	const n = 200
	for i := range n {
		mustCreate(t, s, fmt.Sprintf("k%d", i), rec("0", t0))
	}
	// Acknowledged updates, on every node.
	for i := range n {
		key := fmt.Sprintf("k%d", i)
		r := mustLoad(t, s, key)
		r.Data = []byte("1")
		if err := s.Update(ctx, key, r); err != nil {
			t.Fatal(err)
		}
	}

	victim := c.nodes[0]
	victim.kill()
	failed := 0
	for i := range 20 {
		opCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := s.Load(opCtx, fmt.Sprintf("k%d", i))
		cancel()
		if err != nil {
			failed++
			if !strings.HasPrefix(err.Error(), "redis: load: ") {
				t.Errorf("Load with a master down: %v", err)
			}
		}
	}
	if failed == 0 {
		t.Fatal("no Load failed with a master down")
	}
	t.Logf("with a master down, %d of 20 Loads failed with an error", failed)

	if err := c.startNode(victim); err != nil {
		t.Fatal(err)
	}
	if err := c.waitOK(); err != nil {
		t.Fatal(err)
	}
	// The same store and client: every session back, every update kept.
	var r session.Record
	err := waitFor("the store serving again", func() error {
		var err error
		r, err = s.Load(ctx, "k0")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		key := fmt.Sprintf("k%d", i)
		r = mustLoad(t, s, key)
		if string(r.Data) != "1" || r.Version != 2 {
			t.Fatalf("%s after the restart: %q version %d, want the acknowledged update", key, r.Data, r.Version)
		}
		r.Data = []byte("2")
		if err := s.Update(ctx, key, r); err != nil {
			t.Fatalf("Update of %s after the restart: %v", key, err)
		}
	}
	if got, err := s.Cleanup(ctx, t0.Add(time.Nanosecond)); err != nil || got != n {
		t.Fatalf("Cleanup after the restart = %d, %v; want %d", got, err, n)
	}
}

// TestClusterSlotMigration moves the hash slot of one shard to another
// node, key by key, while requests run on that shard's sessions. Halfway,
// with the records split between the nodes and the shard's index not yet
// moved, it loads sessions on both sides (the client follows ASK) and
// starts an Update, which Redis refuses with TRYAGAIN until the keys are
// together again; the store retries it. Throughout, a workload increments
// every session's counter; afterwards every acknowledged increment is
// there and no call failed.
func TestClusterSlotMigration(t *testing.T) {
	c := startTestCluster(t, false)
	tryAgain := make(chan struct{}, 1)
	cl := c.client(t)
	cl.OnNewNode(func(n *redis.Client) { n.AddHook(tryAgainSpy{tryAgain}) })
	s := testStore(t, cl)
	ctx := testCtx(t)
	const shard = 5
	keys := keysInShard(shard, 40, "m")
	for _, k := range keys {
		mustCreate(t, s, k, rec("0", t0))
	}
	slot, err := cl.ClusterKeySlot(ctx, s.indexKey[shard]).Result()
	if err != nil {
		t.Fatal(err)
	}
	// The nodes, by id; the one serving the slot is the source.
	admin := map[string]*redis.Client{}
	ids := map[string]string{}
	var src, dst string
	for _, n := range c.nodes {
		nc := redis.NewClient(&redis.Options{Addr: n.addr()})
		defer nc.Close()
		id, err := nc.Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			t.Fatal(err)
		}
		admin[n.addr()], ids[n.addr()] = nc, id
		cnt, err := nc.ClusterCountKeysInSlot(ctx, int(slot)).Result()
		if err != nil {
			t.Fatal(err)
		}
		if cnt > 0 {
			src = n.addr()
		} else if dst == "" {
			dst = n.addr()
		}
	}
	if src == "" || dst == "" {
		t.Fatalf("no source or destination for slot %d", slot)
	}

	// The workload.
	stop := make(chan struct{})
	done := make(chan struct{})
	acked := make([]int, len(keys))
	var opErrs []error
	increment := func(j int) error {
		r, err := s.Load(ctx, keys[j])
		if err != nil {
			return err
		}
		n, _ := strconv.Atoi(string(r.Data))
		r.Data = []byte(strconv.Itoa(n + 1))
		r.ATime = r.ATime.Add(time.Nanosecond)
		return s.Update(ctx, keys[j], r)
	}
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// The last session is the test's own, below.
			j := i % (len(keys) - 1)
			if err := increment(j); err != nil {
				opErrs = append(opErrs, err)
			} else {
				acked[j]++
			}
		}
	}()

	mustDo := func(nc *redis.Client, args ...any) {
		t.Helper()
		if err := nc.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	mustDo(admin[dst], "CLUSTER", "SETSLOT", slot, "IMPORTING", ids[src])
	mustDo(admin[src], "CLUSTER", "SETSLOT", slot, "MIGRATING", ids[dst])
	host, port, _ := strings.Cut(dst, ":")
	migrate := func(key string) {
		t.Helper()
		mustDo(admin[src], "MIGRATE", host, port, "", 0, 5000, "KEYS", key)
	}
	slotKeys, err := admin[src].ClusterGetKeysInSlot(ctx, int(slot), 1000).Result()
	if err != nil {
		t.Fatal(err)
	}
	// The records, the test's own session's first, so that it moves in
	// the first half.
	own := keys[len(keys)-1]
	records := []string{s.recPrefix[shard] + own}
	for _, k := range slotKeys {
		if k != s.indexKey[shard] && k != records[0] {
			records = append(records, k)
		}
	}
	half := len(records) / 2
	for _, k := range records[:half] {
		migrate(k)
	}
	// Split: some records on each node, the index on the source.
	for _, k := range []string{records[0], records[len(records)-1]} {
		if _, err := s.Load(ctx, strings.TrimPrefix(k, s.recPrefix[shard])); err != nil {
			t.Fatalf("Load during the migration: %v", err)
		}
	}
	updated := make(chan error, 1)
	go func() { updated <- increment(len(keys) - 1) }()
	// Its record is on the destination, its index on the source: the
	// script is refused until both are on one node.
	select {
	case <-tryAgain:
	case err := <-updated:
		t.Fatalf("Update with its keys split returned %v before any TRYAGAIN", err)
	}
	for _, k := range records[half:] {
		migrate(k)
	}
	migrate(s.indexKey[shard])
	// The destination first, then the source, then the rest, as Redis's
	// cluster specification says.
	mustDo(admin[dst], "CLUSTER", "SETSLOT", slot, "NODE", ids[dst])
	mustDo(admin[src], "CLUSTER", "SETSLOT", slot, "NODE", ids[dst])
	for _, n := range c.nodes {
		if a := n.addr(); a != src && a != dst {
			mustDo(admin[a], "CLUSTER", "SETSLOT", slot, "NODE", ids[dst])
		}
	}
	if err := <-updated; err != nil {
		t.Errorf("Update started during the migration: %v", err)
	} else {
		acked[len(keys)-1]++
	}
	close(stop)
	<-done

	total := 0
	for j, k := range keys {
		r := mustLoad(t, s, k)
		if got, want := string(r.Data), strconv.Itoa(acked[j]); got != want {
			t.Errorf("%s: count %s, %s acknowledged increments", k, got, want)
		}
		total += acked[j]
	}
	t.Logf("migrated %d keys of slot %d from %s to %s; %d acknowledged increments, %d failed calls",
		len(slotKeys), slot, src, dst, total, len(opErrs))
	for _, err := range opErrs {
		t.Errorf("call failed during the migration: %v", err)
	}
	if cnt, err := admin[dst].ClusterCountKeysInSlot(ctx, int(slot)).Result(); err != nil || int(cnt) != len(slotKeys) {
		t.Errorf("destination holds %d keys of the slot (%v), want %d", cnt, err, len(slotKeys))
	}
}

// tryAgainSpy signals every TRYAGAIN reply a node gives.
type tryAgainSpy struct{ seen chan<- struct{} }

func (tryAgainSpy) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h tryAgainSpy) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if redis.IsTryAgainError(cmd.Err()) {
			select {
			case h.seen <- struct{}{}:
			default:
			}
		}
		return err
	}
}

func (tryAgainSpy) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
