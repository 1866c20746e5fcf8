package conformance

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	session "github.com/websession/websession/core"
)

// brokenEnv selects, in a subprocess, the case TestBrokenHelper runs.
const brokenEnv = "CONFORMANCE_SELFTEST_CASE"

// brokenCase is one run of the suite in a subprocess: usually against the
// reference store with one defect, which the subtests in fails must catch.
type brokenCase struct {
	name string // the case, and the defect of the reference store unless bug says otherwise
	bug  string
	what string // for cases that are not a defect of defects
	// tweak adjusts the harness the store is declared with.
	tweak func(h *Harness)
	// run restricts the subprocess to a group (a -test.run pattern below
	// TestBrokenHelper), for defects whose every symptom costs real time.
	run string
	// fails are the subtests that must fail: first the one meant for the
	// defect, then every other that deterministically catches it too.
	fails []string
	// alsoMay are subtests (exact, or a group as "Store/*") that may also
	// fail: collateral damage, or scheduling-dependent. No other may.
	alsoMay []string
	// refused: Run must refuse the harness before running any subtest.
	refused bool
	// needsRace: the defect is visible only to the race detector.
	needsRace bool
	// skips are subtests that must be skipped, output substrings that
	// must appear.
	skips  []string
	output []string
}

func (c brokenCase) harness() Harness {
	bug := c.name
	if c.bug != "" {
		bug = c.bug
	}
	if bug == "-" {
		bug = ""
	}
	h := harnessFor(bug)
	if c.tweak != nil {
		c.tweak(&h)
	}
	if !c.refused {
		// The slow subtests (races that run until their coverage is done,
		// the subprocess of LocalZone) run only for the defects listed as
		// caught by them: the others are proven elsewhere.
		for _, slow := range slowChecks {
			if !c.mentions(slow) {
				if h.Skip == nil {
					h.Skip = map[string]string{}
				}
				h.Skip[slow] = "self-test: the defect is not listed as caught by it"
			}
		}
	}
	return h
}

// slowChecks are the subtests that take longest on a correct store.
var slowChecks = []string{
	"Store/Concurrent/Create", "Store/Concurrent/Update", "Store/Concurrent/TouchVsDelete",
	"Store/Concurrent/TouchVsUpdate", "Store/Concurrent/CleanupVsWrites", "Store/Owner/Concurrent",
	"Store/Time/LocalZone",
}

// mentions reports whether the case lists name as failing or possibly
// failing.
func (c brokenCase) mentions(name string) bool {
	return slices.Contains(c.fails, name) || allowed(c.alsoMay, name)
}

// harnessFor returns the harness of the store with the given defect: a
// realistic store for the sql-, kv- and sync- defects, else the
// reference store.
func harnessFor(bug string) Harness {
	switch {
	case strings.HasPrefix(bug, "sql-"):
		return sqlHarness(bug)
	case strings.HasPrefix(bug, "kv-"):
		return kvHarness(bug)
	case strings.HasPrefix(bug, "sync-"):
		return syncHarness(bug)
	}
	return refHarness(bug, 0, 0)
}

func micro(h *Harness) { h.Precision = time.Microsecond }

// caching declares the store with a read cache of lifetime ttl and the
// given staleness.
func caching(ttl, staleness time.Duration) func(h *Harness) {
	return func(h *Harness) {
		inner := h.NewStore
		h.NewStore = func(tb testing.TB, ns string) session.Store {
			s := inner(tb, ns).(*refStore)
			s.ttl = ttl
			return s
		}
		h.Staleness = staleness
	}
}

// brokenCases are the self-tests: the reference store with one defect
// each, and harnesses that must be refused or must skip. The first entry
// of fails is the subtest meant for the defect.
var brokenCases = []brokenCase{
	// Time.
	{name: bugClockATime, fails: []string{"Store/Create/RoundTrip", "Store/Update/RightVersion", "Store/Touch/ATimeOnly", "Session/IdleExpiry/AtBoundary"}, alsoMay: everything},
	{name: bugClockCleanup, fails: []string{"Store/Cleanup/Boundary", "Store/Cleanup/Count", "Store/Cleanup/ByATime", "Store/Cleanup/ReallyDeletes", "Store/SecondInstance/SeesCleanup", "Session/Cleanup", "Store/Cleanup/Fractions", "Store/Cleanup/Many", "Store/Namespace/Cleanup", "Store/Owner/Cleanup", "Store/Owner/Concurrent", "Store/Owner/SecondInstance", "Store/Time/LocalZone"}},
	{name: bugRoundsUp, tweak: micro, fails: []string{"Store/Time/SubPrecision", "Store/Create/RoundTrip"}, alsoMay: []string{"Store/*"}},
	{name: bugCoarserThanDeclared, tweak: micro, fails: []string{"Store/Time/SubPrecision", "Store/Create/RoundTrip", "Session/IdleExpiry/AtBoundary"}, alsoMay: everything},
	{name: bugLosesZone, fails: []string{"Store/Time/Zone", "Store/Create/RoundTrip", "Store/Cleanup/Boundary"}, alsoMay: everything},
	// Load, versions and the write calls.
	{name: bugLoadMissingNil, fails: []string{"Store/Load/Missing", "Store/Update/Missing", "Store/Touch/Missing", "Store/Delete/Existing"}, alsoMay: everything},
	{name: bugIgnoresVersion, fails: []string{"Store/Update/StaleVersion", "Store/Concurrent/Update", "Store/SecondInstance/WriteConflicts", "Session/Overlap/DifferentKeys", "Store/Owner/Update", "Session/Overlap/StaleReadThenWrite"}, alsoMay: []string{"Session/Overlap/*", "Store/Concurrent/CASCounter"}},
	{name: bugStaleUpdateWrites, fails: []string{"Store/Update/StaleVersion", "Store/Concurrent/Update", "Store/SecondInstance/WriteConflicts", "Session/Overlap/DifferentKeys", "Store/Owner/Update", "Session/Overlap/StaleReadThenWrite"}, alsoMay: []string{"Session/Overlap/*", "Store/Concurrent/CASCounter"}},
	{name: bugNoVersionBump, fails: []string{"Store/Update/RightVersion", "Store/Concurrent/CASCounter", "Session/Overlap/DifferentKeys", "Session/Overlap/StaleReadThenWrite"}, alsoMay: []string{"Session/Overlap/*", "Store/*"}},
	{name: bugUpdateNoop, fails: []string{"Store/Update/RightVersion", "Session/Counter"}, alsoMay: everything},
	// Regenerate updates the record it just created at Version 1.
	{name: bugCreateKeepsVersion, fails: []string{"Store/Create/VersionIgnored"}, alsoMay: []string{"Session/Regenerate"}},
	{name: bugUpdateSetsCreated, fails: []string{"Store/Update/KeepsCreated", "Store/Update/RightVersion", "Session/Lifetime"}, alsoMay: []string{"Store/*"}},
	{name: bugUpdateCreates, fails: []string{"Store/Update/Missing", "Store/Delete/Existing", "Store/Cleanup/ReallyDeletes", "Store/SecondInstance/SeesDelete", "Session/KillInFlight", "Store/Owner/Update", "Session/Overlap/KillDuringWrites", "Session/Owner/EndInFlight"}, alsoMay: []string{"Store/Concurrent/CleanupVsWrites"}},
	{name: bugCreateOverwrites, fails: []string{"Store/Create/Exists", "Store/SecondInstance/WriteConflicts", "Store/Concurrent/Create"}},
	{name: bugCreateExistsWrites, fails: []string{"Store/Create/Exists", "Store/Concurrent/Create"}},
	{name: bugTouchCreates, fails: []string{"Store/Touch/Missing", "Store/Delete/Existing", "Store/Cleanup/ReallyDeletes", "Store/SecondInstance/SeesDelete"}, alsoMay: []string{"Store/Concurrent/TouchVsDelete", "Store/Concurrent/CleanupVsWrites"}},
	{name: bugTouchBumpsVersion, fails: []string{"Store/Touch/ATimeOnly", "Session/ReadOnly/AfterTouchInterval"}, alsoMay: []string{"Store/*"}},
	{name: bugTouchNoop, fails: []string{"Store/Touch/ATimeOnly", "Store/SecondInstance/SeesTouch", "Session/ReadOnly/AfterTouchInterval"}, alsoMay: []string{"Store/*"}},
	{name: bugDeleteMissingErrs, fails: []string{"Store/Delete/Missing"}},
	{name: bugDeleteNoop, fails: []string{"Store/Delete/Existing", "Store/Delete/Missing", "Session/Counter", "Session/IdleExpiry/PastBoundary", "Session/Regenerate", "Session/KillInFlight"}, alsoMay: everything},
	// Cleanup.
	{name: bugCleanupBoundary, fails: []string{"Store/Cleanup/Boundary", "Store/Cleanup/Count", "Store/Cleanup/ReallyDeletes", "Store/SecondInstance/SeesCleanup", "Session/Cleanup", "Store/Cleanup/Fractions", "Store/Cleanup/Many", "Store/Owner/Cleanup", "Store/Owner/Concurrent", "Store/Owner/SecondInstance", "Store/Time/LocalZone"}},
	{name: bugCleanupMiscounts, fails: []string{"Store/Cleanup/Count", "Store/Cleanup/Boundary", "Store/Cleanup/ByATime", "Store/Cleanup/ReallyDeletes", "Store/SecondInstance/SeesCleanup", "Store/Concurrent/DistinctKeys", "Session/Cleanup", "Store/Cleanup/Fractions", "Store/Cleanup/Many", "Store/Concurrent/CleanupVsWrites", "Store/Owner/Cleanup", "Store/Time/LocalZone"}},
	{name: bugCleanupHides, fails: []string{"Store/Cleanup/ReallyDeletes"}, alsoMay: []string{"Store/Concurrent/CleanupVsWrites", "Store/Owner/Cleanup", "Store/Owner/Concurrent", "Store/Owner/SecondInstance"}},
	{name: bugCleanupByCreated, fails: []string{"Store/Cleanup/ByATime", "Store/Cleanup/Boundary", "Store/Cleanup/Count", "Store/Cleanup/Fractions", "Store/Cleanup/Many", "Store/Concurrent/CleanupVsWrites", "Store/Owner/Cleanup", "Store/Owner/SecondInstance", "Store/Time/LocalZone"}},
	// Payloads and buffers.
	{name: bugTruncatesLarge, fails: []string{"Store/Payload/Max", "Store/Payload/BeyondMax"}},
	{name: bugTruncatesAtMax, tweak: func(h *Harness) { h.MaxPayload = 4096 }, fails: []string{"Store/Payload/BeyondMax"}},
	{name: bugStopsAtNUL, fails: []string{"Store/Payload/Binary", "Store/Payload/Max", "Store/Payload/BeyondMax", "Store/Owner/RoundTrip"}},
	{name: bugEmptyIsMissing, fails: []string{"Store/Payload/Empty", "Store/Owner/RoundTrip"}},
	{name: bugAliasSave, fails: []string{"Store/Aliasing/Save"}},
	{name: bugAliasLoad, fails: []string{"Store/Aliasing/Load", "Store/Aliasing/LaterLoad"}},
	// Keys.
	{name: bugKeyTruncated, fails: []string{"Store/Key/MaxLength"}},
	{name: bugKeyCaseFold, fails: append([]string{"Store/Key/Distinct", "Store/Key/Alphabet", "Session/Owner/EndInFlight"}, ownerChecks...)},
	{name: bugInvalidKeyUnwrapped, fails: []string{"Store/Key/Invalid"}},
	// Session keys are random: one may start with '-'.
	{name: bugRejectsDashKeys, fails: []string{"Store/Key/Alphabet", "Store/Key/Distinct"}, alsoMay: everything},
	// Sharing between instances.
	{name: bugNotShared, fails: []string{"Store/SecondInstance/SeesCreate", "Store/SecondInstance/SeesUpdate", "Store/SecondInstance/SeesTouch", "Store/SecondInstance/SeesDelete", "Store/SecondInstance/SeesCleanup", "Store/SecondInstance/WriteConflicts", "Store/Close/UseAfterClose", "Store/Owner/SecondInstance"}, alsoMay: []string{"Session/Overlap/ManyWritersTwoInstances", "Session/Overlap/AtomicIncrementsTwoInstances"}},
	{name: bugStaleUndeclared, bug: "-", tweak: caching(time.Hour, 0), fails: []string{"Store/SecondInstance/SeesUpdate", "Store/SecondInstance/SeesTouch", "Store/SecondInstance/SeesDelete", "Store/SecondInstance/SeesCleanup"}, alsoMay: []string{"Session/Overlap/ManyWritersTwoInstances", "Session/Overlap/AtomicIncrementsTwoInstances"}},
	// Its stale cache also lets concurrent Updates in one instance through.
	{name: bugCachedVersionCheck, tweak: caching(100*time.Millisecond, time.Second), fails: []string{"Store/SecondInstance/WriteConflicts"}, alsoMay: []string{"Session/Overlap/ManyWritersTwoInstances", "Session/Overlap/AtomicIncrementsTwoInstances", "Store/Concurrent/Update", "Store/Concurrent/CASCounter"}},
	// Concurrency.
	{name: bugRacyCreate, fails: []string{"Store/Concurrent/Create"}},
	{name: bugRacyUpdate, fails: []string{"Store/Concurrent/Update"}, alsoMay: []string{"Session/Overlap/ManyWritersTwoInstances", "Session/Overlap/AtomicIncrementsTwoInstances", "Store/Concurrent/CASCounter"}},
	{name: bugDataRace, run: "^Store$/^Concurrent$/^DistinctKeys$", needsRace: true, fails: []string{"Store/Concurrent/DistinctKeys"}, output: []string{"race detected"}},
	// Contexts, hangs, panics.
	{name: bugIgnoresCtx, fails: append(slices.Clone(ctxChecks), "Session/Overlap/StalledSave")},
	{name: bugCtxUnwrapped, fails: append(slices.Clone(ctxChecks), "Session/Overlap/StalledSave")},
	{name: bugHangs, run: "^Store$/^Load$", tweak: func(h *Harness) { h.OpTimeout = 100 * time.Millisecond }, fails: []string{"Store/Load/Missing"}, output: []string{`Store.Load("`, "did not return within 200ms"}},
	{name: bugPanics, fails: []string{"Store/Touch/Missing", "Store/Delete/Existing", "Store/Cleanup/ReallyDeletes", "Store/SecondInstance/SeesDelete"}, alsoMay: []string{"Store/Concurrent/TouchVsDelete", "Store/Concurrent/CleanupVsWrites"}, output: []string{`Store.Touch("`, "panicked: assignment to entry in nil map"}},

	// Lifecycle.
	{name: bugCloseIgnored, fails: []string{"Store/Close/UseAfterClose"}},

	// Realistic stores: a simulated SQL table shared by apps.
	{name: sqlTextTime, fails: []string{"Store/Cleanup/Fractions"}},
	// On a machine whose zone is not UTC, writing local wall-clock time and
	// reading it as UTC breaks every time: only LocalZone catches it in UTC.
	{name: sqlLocalFormat, fails: []string{"Store/Time/LocalZone"}, alsoMay: everything},
	// Where the machine's zone falls back near the suite's instants (as
	// the zone of the LocalZone subprocess does, at Epoch), every check
	// that stores times catches it too.
	{name: sqlLocalWallClock, fails: []string{"Store/Time/LocalZone"}, alsoMay: everything},
	{name: sqlCleanupOneBatch, fails: []string{"Store/Cleanup/Many"}},
	{name: sqlCleanupTwoPhase, fails: []string{"Store/Concurrent/CleanupVsWrites"}},
	// Its Cleanup also deletes what other subtests left in the shared table.
	{name: sqlCleanupAllApps, fails: []string{"Store/Namespace/Cleanup", "Store/Cleanup/Boundary", "Store/Cleanup/Count", "Store/Cleanup/Fractions", "Store/Cleanup/Many", "Store/Concurrent/CleanupVsWrites", "Store/Owner/Cleanup", "Store/SecondInstance/SeesCleanup", "Session/Cleanup"}},
	{name: sqlDeleteAllApps, fails: []string{"Store/Namespace/Delete", "Store/Owner/Namespace"}},
	{name: sqlDeleteLike, fails: []string{"Store/Key/NoWildcards"}},
	{name: sqlGreatestATime, fails: []string{"Store/Update/EarlierATime"}},
	{name: sqlTouchRowsChanged, fails: []string{"Store/Touch/SameATime", "Store/Owner/Touch", "Store/Concurrent/TouchVsDelete", "Store/Concurrent/TouchVsUpdate", "Store/Concurrent/CleanupVsWrites"}},
	{name: sqlTouchReadWrite, fails: []string{"Store/Concurrent/TouchVsDelete", "Store/Concurrent/TouchVsUpdate", "Store/Concurrent/CleanupVsWrites"}},
	{name: sqlConflictNotFound, fails: []string{"Store/Update/StaleVersion", "Store/Concurrent/Update", "Store/Concurrent/CASCounter", "Store/SecondInstance/WriteConflicts", "Store/Owner/Update", "Session/Overlap/DifferentKeys"},
		alsoMay: []string{"Session/Overlap/*"},
		output:  []string{"The record exists at another Version: that is a conflict", "the store answered ErrNotFound, though the record exists at that newer Version"}},
	// Concurrent Loads share its buffer too, so every check that loads from
	// several goroutines may see another record's bytes (and -race a race).
	{name: sqlRawBytes, fails: []string{"Store/Aliasing/LaterLoad"}, alsoMay: []string{"Store/*", "Session/Overlap/*"}},
	{name: sqlSelectInsert, fails: []string{"Store/Concurrent/Create"}},
	{name: sqlRacyVersion, fails: []string{"Store/Concurrent/Update", "Store/Concurrent/CASCounter"}, alsoMay: []string{"Store/Concurrent/CleanupVsWrites", "Session/Overlap/ManyWritersTwoInstances", "Session/Overlap/AtomicIncrementsTwoInstances"}},
	{name: sqlOwnerLike, fails: []string{"Store/Owner/Exact", "Store/Owner/InvalidKey"}},
	{name: sqlOwnerAllApps, fails: []string{"Store/Owner/Namespace"}},
	// Realistic stores: a simulated key-value server shared by apps.
	{name: kvNoSeparator, fails: []string{"Store/Namespace/Keys", "Store/Namespace/Delete", "Store/Namespace/Cleanup"}},
	{name: kvCleanupScanAll, fails: []string{"Store/Namespace/Cleanup", "Store/Cleanup/Boundary", "Store/Cleanup/Count", "Store/Cleanup/Fractions", "Store/Cleanup/Many", "Store/Concurrent/CleanupVsWrites", "Store/Owner/Cleanup", "Store/SecondInstance/SeesCleanup", "Session/Cleanup"}},
	{name: kvCleanupGetThenDel, fails: []string{"Store/Concurrent/CleanupVsWrites"}},
	{name: kvClosePanics, fails: []string{"Store/Close/Twice", "Store/Close/UseAfterClose"}, output: []string{"Store.Close() panicked (Close must be idempotent"}},
	{name: kvOwnerTrustIndex, fails: []string{"Store/Owner/Update", "Store/Owner/Concurrent", "Store/Owner/SecondInstance"}},
	{name: kvOwnerReindex, fails: []string{"Store/Owner/Concurrent"}},
	{name: kvOwnerNotOnDelete, fails: []string{"Store/Owner/Delete", "Store/Owner/Concurrent"}},
	{name: kvOwnerNotOnCleanup, fails: []string{"Store/Owner/Cleanup", "Store/Owner/Concurrent"}},
	// Realistic stores: a sync.Map, without an owner index.
	{name: syncRacyCreate, fails: []string{"Store/Concurrent/Create"}},
	{name: syncRacyUpdate, fails: []string{"Store/Concurrent/Update"}, alsoMay: []string{"Store/Concurrent/CASCounter", "Store/Concurrent/CleanupVsWrites"}},
	{name: syncTouchReadWrite, fails: []string{"Store/Concurrent/TouchVsDelete", "Store/Concurrent/TouchVsUpdate"}, alsoMay: []string{"Store/Concurrent/CleanupVsWrites"}},
	{name: syncCleanupTwoPhase, fails: []string{"Store/Concurrent/CleanupVsWrites"}},
	// The owner index of the reference store (only Store/Owner runs: the
	// defects touch nothing else).
	{name: bugOwnerNotOnDelete, run: "^Store$/^Owner$", fails: []string{"Store/Owner/Delete", "Store/Owner/Concurrent", "Store/Owner/SecondInstance"}},
	{name: bugOwnerNotOnCleanup, run: "^Store$/^Owner$", fails: []string{"Store/Owner/Cleanup", "Store/Owner/Concurrent", "Store/Owner/SecondInstance"}},
	{name: bugOwnerNotOnChange, run: "^Store$/^Owner$", fails: []string{"Store/Owner/Update", "Store/Owner/Concurrent", "Store/Owner/SecondInstance"}},
	{name: bugOwnerStaleTouch, run: "^Store$/^Owner$", fails: []string{"Store/Owner/Touch"}},
	{name: bugOwnerAlias, run: "^Store$/^Owner$", fails: []string{"Store/Owner/Aliasing"}},
	{name: bugOwnerDropped, run: "^Store$/^Owner$", fails: []string{"Store/Owner/RoundTrip", "Store/Owner/Update", "Store/Owner/Touch", "Store/Owner/Exact", "Store/Owner/Namespace", "Store/Owner/Delete", "Store/Owner/Cleanup", "Store/Owner/Aliasing", "Store/Owner/SecondInstance", "Store/Owner/Concurrent", "Store/Owner/InvalidKey"}},
	{name: bugOwnerTouchClears, run: "^Store$/^Owner$", fails: []string{"Store/Owner/Touch"}},
	{name: bugOwnerUpdateKeeps, run: "^Store$/^Owner$", fails: []string{"Store/Owner/Update", "Store/Owner/Concurrent", "Store/Owner/SecondInstance"}},
	{name: bugOwnerUnknownErrs, run: "^Store$/^Owner$", fails: []string{"Store/Owner/RoundTrip", "Store/Owner/Update", "Store/Owner/Exact", "Store/Owner/Delete", "Store/Owner/Cleanup", "Store/Owner/SecondInstance"},
		output: []string{"an owner with no records has an empty list: return nil, not ErrNotFound"}},
	{name: bugOwnerPrefix, run: "^Store$/^Owner$", fails: []string{"Store/Owner/Exact"}},
	{name: bugOwnerAllNamespaces, run: "^Store$/^Owner$", fails: []string{"Store/Owner/Namespace"}},
	{name: bugOwnerInvalidPanics, run: "^Store$/^Owner$", fails: []string{"Store/Owner/InvalidKey"}, output: []string{`Store.LoadOwned("") panicked: runtime error: index out of range`}},
	// A lock left held is blamed on the call that left it, not on the next.
	{name: bugLeaksLock, run: "^Store$/^Update$/^StaleVersion$", tweak: func(h *Harness) { h.OpTimeout = 100 * time.Millisecond }, fails: []string{"Store/Update/StaleVersion"},
		output: []string{`The call before it, Store.Update("`, "returned session.ErrConflict: if that call left a lock held"}},

	// The harness itself.
	{name: "skip-typo", bug: "-", what: "a Skip key with a typo (StaleVerison)", tweak: func(h *Harness) { h.Skip = map[string]string{"Store/Update/StaleVerison": "flaky"} }, refused: true,
		output: []string{`Harness.Skip names no subtest: "Store/Update/StaleVerison", did you mean "Store/Update/StaleVersion"?`}},
	{name: "bad-harness", bug: "-", what: "no NewStore, negative durations and size, an unknown capability, empty reasons", refused: true, tweak: func(h *Harness) {
		*h = Harness{Precision: -1, MaxPayload: -1, Staleness: -1, OpTimeout: -1,
			Unsupported: map[Capability]string{"Teleport": "no", SharedStorage: ""},
			Skip:        map[string]string{"Store/Load/Missing": " "}}
	}, output: []string{"Harness.NewStore is nil", "Harness.Precision is negative", "Harness.MaxPayload is negative", "Harness.Staleness is negative",
		"Harness.OpTimeout is negative", `unknown capability "Teleport"`, `Harness.Unsupported["SharedStorage"] gives no reason`, `Harness.Skip["Store/Load/Missing"] gives no reason`}},
	{name: "odd-precision", bug: "-", what: "Precision 7ms, which no storage has", refused: true, tweak: func(h *Harness) { h.Precision = 7 * time.Millisecond },
		output: []string{"Harness.Precision 7ms is neither a divisor nor a multiple of a second"}},
	{name: "skip-subtest", bug: bugIgnoresVersion, what: "ignores-version, with Store/Update/StaleVersion skipped (only Store/Update runs)", run: "^Store$/^Update$",
		tweak: func(h *Harness) {
			h.Skip = map[string]string{"Store/Update/StaleVersion": "known defect, tracked in #12"}
		},
		skips: []string{"Store/Update/StaleVersion"}, output: []string{`skipped by Harness.Skip["Store/Update/StaleVersion"]: known defect, tracked in #12`}},
	{name: "skip-group", bug: "-", what: "the whole Session group skipped", run: "^Session$",
		tweak: func(h *Harness) { h.Skip = map[string]string{"Session": "only the Store layer here"} },
		skips: []string{"Session"}, output: []string{`skipped by Harness.Skip["Session"]: only the Store layer here`}},
	{name: "unsupported", bug: bugNotShared, what: "not-shared, declaring SharedStorage unsupported", run: "^Store$/^SecondInstance$",
		tweak: func(h *Harness) {
			h.Unsupported = map[Capability]string{SharedStorage: "in-process: instances share nothing"}
		},
		skips:  []string{"Store/SecondInstance/SeesCreate", "Store/SecondInstance/SeesUpdate", "Store/SecondInstance/SeesTouch", "Store/SecondInstance/SeesDelete", "Store/SecondInstance/SeesCleanup", "Store/SecondInstance/WriteConflicts"},
		output: []string{"needs capability SharedStorage, which the store lacks: in-process: instances share nothing"}},
}

// everything allows collateral failures anywhere, for defects (a wrong
// time, a lost write) that every later check trips over.
var everything = []string{"Store/*", "Session/*"}

// ownerChecks are the subtests of OwnerIndex, for defects that break
// every listing (a key mangled on the way in comes out unlike the key
// given).
var ownerChecks = []string{
	"Store/Owner/RoundTrip", "Store/Owner/Update", "Store/Owner/Touch", "Store/Owner/Exact", "Store/Owner/Namespace", "Store/Owner/Delete",
	"Store/Owner/Cleanup", "Store/Owner/Aliasing", "Store/Owner/SecondInstance", "Store/Owner/Concurrent", "Store/Owner/InvalidKey",
}

var ctxChecks = []string{
	"Store/Context/Canceled/Load", "Store/Context/Canceled/Create", "Store/Context/Canceled/Update",
	"Store/Context/Canceled/Touch", "Store/Context/Canceled/Delete", "Store/Context/Canceled/Cleanup",
	"Store/Context/DeadlineExceeded/Load", "Store/Context/DeadlineExceeded/Create", "Store/Context/DeadlineExceeded/Update",
	"Store/Context/DeadlineExceeded/Touch", "Store/Context/DeadlineExceeded/Delete", "Store/Context/DeadlineExceeded/Cleanup",
}

// TestBrokenHelper is not a test of its own: TestBroken runs it in a
// subprocess, with brokenEnv naming the case, to run the suite against a
// broken store without failing the parent.
func TestBrokenHelper(t *testing.T) {
	name := os.Getenv(brokenEnv)
	if name == "" {
		t.Skip("subprocess helper of TestBroken; runs only with " + brokenEnv + " set")
	}
	for _, c := range brokenCases {
		if c.name == name {
			Run(t, c.harness())
			return
		}
	}
	t.Fatalf("no self-test case %q", name)
}

var failLine = regexp.MustCompile(`(?m)^\s*--- FAIL: TestBrokenHelper/(\S+)`)
var skipLine = regexp.MustCompile(`(?m)^\s*--- SKIP: TestBrokenHelper/(\S+)`)

// leaves keeps the names that are no other name's group.
func leaves(names []string) []string {
	var out []string
	for _, n := range names {
		leaf := true
		for _, m := range names {
			if strings.HasPrefix(m, n+"/") {
				leaf = false
				break
			}
		}
		if leaf {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func matches(re *regexp.Regexp, out []byte) []string {
	var names []string
	for _, m := range re.FindAllSubmatch(out, -1) {
		names = append(names, string(m[1]))
	}
	return leaves(names)
}

// runCase runs the suite for c in a subprocess and returns its output and
// the leaf subtests that failed.
func runCase(t *testing.T, c brokenCase) ([]byte, []string) {
	t.Helper()
	pattern := "^TestBrokenHelper$"
	if c.run != "" {
		pattern += "/" + c.run
	}
	cmd := exec.Command(os.Args[0], "-test.run="+pattern, "-test.v", "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(quickExit(os.Environ(), brokenEnv), brokenEnv+"="+c.name)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	failed := matches(failLine, out.Bytes())
	if (err == nil) != (len(failed) == 0 && !bytes.Contains(out.Bytes(), []byte("--- FAIL: TestBrokenHelper"))) {
		t.Errorf("subprocess exit status %v disagrees with its failures %v", err, failed)
	}
	return out.Bytes(), failed
}

// TestBroken runs the suite against each broken store and checks that the
// subtests meant for its defect, and only those listed, caught it.
func TestBroken(t *testing.T) {
	if os.Getenv(brokenEnv) != "" {
		t.Skip("inside a subprocess")
	}
	for _, c := range brokenCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if c.needsRace && !raceEnabled {
				t.Skip("this defect is visible only to the race detector: run go test -race")
			}
			out, failed := runCase(t, c)
			t.Logf("%s caught by %d subtests: %s", c.name, len(failed), strings.Join(failed, " "))
			for _, want := range c.fails {
				if !slices.Contains(failed, want) {
					t.Errorf("subtest %s did not catch the defect %q", want, c.name)
				}
			}
			for _, got := range failed {
				if !slices.Contains(c.fails, got) && !allowed(c.alsoMay, got) {
					t.Errorf("subtest %s failed, but is not listed as catching %q", got, c.name)
				}
			}
			ran := bytes.Contains(out, []byte("=== RUN   TestBrokenHelper/"))
			refused := bytes.Contains(out, []byte("--- FAIL: TestBrokenHelper (")) && !ran
			if refused != c.refused {
				t.Errorf("Run refused the harness: %v, want %v", refused, c.refused)
			}
			skipped := matches(skipLine, out)
			for _, want := range c.skips {
				if !slices.Contains(skipped, want) {
					t.Errorf("subtest %s was not skipped (skipped: %v)", want, skipped)
				}
			}
			for _, want := range c.output {
				if !bytes.Contains(out, []byte(want)) {
					t.Errorf("output lacks %q", want)
				}
			}
			if t.Failed() {
				t.Logf("subprocess output:\n%s", lastLines(out, 60))
			}
		})
	}
}

// allowed reports whether name matches one of patterns: a name, or a
// group "G/*" matching every subtest below G.
func allowed(patterns []string, name string) bool {
	for _, p := range patterns {
		if p == name || strings.HasSuffix(p, "/*") && strings.HasPrefix(name, strings.TrimSuffix(p, "*")) {
			return true
		}
	}
	return false
}
