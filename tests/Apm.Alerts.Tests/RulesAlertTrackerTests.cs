using Apm.Alerts.Rules;

namespace Apm.Alerts.Tests;

public sealed class RulesAlertTrackerTests
{
    private static readonly RuleResult Breach = new(true, "queue grows", new Dictionary<string, string> { ["pending"] = "1, 2, 3" }, ["fix it"]);
    private static readonly RuleResult Clear = new(false, "fine", new Dictionary<string, string>(), []);

    private static readonly AlertTrackerOptions Options = new()
    {
        For = TimeSpan.FromMinutes(5),
        ConsecutiveEvaluations = 3,
        ClearFor = TimeSpan.FromMinutes(10),
        CoolDown = TimeSpan.FromMinutes(30),
    };

    /// <summary>Manual clock: one evaluation a minute.</summary>
    private sealed class Run(AlertTracker tracker)
    {
        public AlertTracker Tracker => tracker;

        public DateTimeOffset Time { get; private set; } = RulesTestData.Now;

        public List<AlertEvent> All { get; } = [];

        public IReadOnlyList<AlertEvent> Tick(RuleResult result, string rule = RuleIds.FinalizerBacklog)
        {
            Time += TimeSpan.FromMinutes(1);
            var events = tracker.Observe("jvm-1", rule, Time, result);
            All.AddRange(events);
            return events;
        }

        public void Ticks(int count, RuleResult result)
        {
            for (var i = 0; i < count; i++)
            {
                Tick(result);
            }
        }
    }

    [Fact]
    public void Pending_then_firing_then_resolved_with_one_stable_id_and_no_duplicates()
    {
        var run = new Run(new AlertTracker(Options));

        var first = Assert.Single(run.Tick(Breach));
        Assert.Equal(AlertState.Pending, first.State);
        var start = run.Time;
        Assert.Empty(run.Tick(Breach));
        var firing = Assert.Single(run.Tick(Breach));
        Assert.Equal(AlertState.Firing, firing.State);
        Assert.Equal(run.Time, firing.FiredAt);
        Assert.Equal("queue grows", firing.Summary);
        Assert.Equal("1, 2, 3", firing.Evidence["pending"]);

        run.Ticks(20, Breach); // still firing: no duplicate events
        run.Ticks(10, Clear);  // clear since the first of these, 9 minutes ago: not yet resolved (ClearFor = 10 minutes)
        Assert.Equal(2, run.All.Count);
        var resolved = Assert.Single(run.Tick(Clear));
        Assert.Equal(AlertState.Resolved, resolved.State);
        Assert.Equal(run.Time, resolved.ResolvedAt);
        Assert.Equal(firing.FiredAt, resolved.FiredAt);

        Assert.All(run.All, e => Assert.Equal($"jvm-1|FinalizerBacklog|{start.UtcDateTime:yyyy-MM-ddTHH:mm:ss.fffZ}", e.Id));
        Assert.Equal([AlertState.Pending, AlertState.Firing, AlertState.Resolved], run.All.Select(e => e.State));
        run.Ticks(10, Clear);
        Assert.Equal(3, run.All.Count);
    }

    [Fact]
    public void A_single_breach_that_clears_before_firing_is_withdrawn_once_under_its_id_and_never_fires()
    {
        var run = new Run(new AlertTracker(Options));

        var pending = Assert.Single(run.Tick(Breach));
        var withdrawn = Assert.Single(run.Tick(Clear));
        run.Ticks(30, Clear);

        Assert.Equal([AlertState.Pending, AlertState.Withdrawn], run.All.Select(e => e.State));
        Assert.Equal(pending.Id, withdrawn.Id);
        Assert.Equal(run.All[0].StartedAt + TimeSpan.FromMinutes(1), withdrawn.ResolvedAt);
        Assert.Null(withdrawn.FiredAt);
        Assert.Empty(run.Tracker.Active());
        // No cool-down after a withdrawal: nobody was told, so the next breach starts a new episode at once.
        Assert.Equal(AlertState.Pending, Assert.Single(run.Tick(Breach)).State);
    }

    [Fact]
    public void A_pending_alert_of_a_JVM_that_exits_is_withdrawn_and_a_firing_one_resolved()
    {
        var tracker = new AlertTracker(Options);
        var t = RulesTestData.Now;
        tracker.Observe("jvm-1", RuleIds.GcOverhead, t, Breach);
        for (var i = 0; i < 3; i++) tracker.Observe("jvm-1", RuleIds.FinalizerBacklog, t.AddMinutes(i), Breach);

        var events = tracker.Retire("jvm-1", t.AddMinutes(5), "The JVM exited.");

        Assert.Equal(AlertState.Withdrawn, Assert.Single(events, e => e.Rule == RuleIds.GcOverhead).State);
        Assert.Equal(AlertState.Resolved, Assert.Single(events, e => e.Rule == RuleIds.FinalizerBacklog).State);
        Assert.All(events, e => Assert.Equal(t.AddMinutes(5), e.ResolvedAt));
    }

    [Fact]
    public void Suggested_fixes_of_the_rule_reach_the_pending_firing_and_resolved_events_and_survive_a_restore()
    {
        string[] fixes = ["Upgrade the JDBC driver.", "Use a shorter query timeout.", "Call java.util.Timer.purge()."];
        var breach = new RuleResult(true, "timer keeps statements", new Dictionary<string, string>(), fixes);
        var run = new Run(new AlertTracker(Options));

        run.Ticks(3, breach);
        run.Ticks(11, Clear);

        Assert.Equal([AlertState.Pending, AlertState.Firing, AlertState.Resolved], run.All.Select(e => e.State));
        Assert.All(run.All, e => Assert.Equal(fixes, e.SuggestedFixes));

        var restored = new AlertTracker(Options);
        restored.Restore(run.All[1]);
        Assert.Equal(fixes, Assert.Single(restored.Active()).SuggestedFixes);
    }

    [Fact]
    public void A_breach_lasting_For_fires_even_before_N_evaluations()
    {
        var tracker = new AlertTracker(new AlertTrackerOptions { For = TimeSpan.FromMinutes(5), ConsecutiveEvaluations = 100 });
        var t = RulesTestData.Now;

        Assert.Equal(AlertState.Pending, Assert.Single(tracker.Observe("j", "r", t, Breach)).State);
        Assert.Empty(tracker.Observe("j", "r", t.AddMinutes(4), Breach));
        Assert.Equal(AlertState.Firing, Assert.Single(tracker.Observe("j", "r", t.AddMinutes(5), Breach)).State);
    }

    [Fact]
    public void A_breach_during_the_clear_period_keeps_the_alert_firing()
    {
        var run = new Run(new AlertTracker(Options));
        run.Ticks(3, Breach);

        run.Ticks(8, Clear);
        run.Tick(Breach);
        run.Ticks(8, Clear);

        Assert.Equal([AlertState.Pending, AlertState.Firing], run.All.Select(e => e.State));
        Assert.Equal(AlertState.Firing, Assert.Single(run.Tracker.Active()).State);
    }

    [Fact]
    public void After_resolving_the_rule_cannot_fire_again_until_the_cool_down_has_passed()
    {
        var run = new Run(new AlertTracker(Options));
        run.Ticks(3, Breach);
        run.Ticks(11, Clear);
        var resolved = run.All[^1];
        Assert.Equal(AlertState.Resolved, resolved.State);

        run.Ticks(20, Breach); // within the 30-minute cool-down: silence
        Assert.Equal(3, run.All.Count);

        run.Ticks(15, Breach); // cool-down over: a new episode with a new id
        Assert.Equal([AlertState.Pending, AlertState.Firing], run.All.Skip(3).Select(e => e.State));
        Assert.NotEqual(resolved.Id, run.All[3].Id);
        Assert.True(run.All[3].StartedAt >= resolved.ResolvedAt!.Value + Options.CoolDown);
    }

    [Fact]
    public void Keys_are_independent_per_jvm_and_rule()
    {
        var tracker = new AlertTracker(new AlertTrackerOptions { ConsecutiveEvaluations = 1 });
        var t = RulesTestData.Now;

        var a = tracker.Observe("jvm-a", RuleIds.GcOverhead, t, Breach);
        var b = tracker.Observe("jvm-b", RuleIds.GcOverhead, t, Breach);
        var c = tracker.Observe("jvm-a", RuleIds.OldGenGrowth, t, Breach);

        // ConsecutiveEvaluations = 1: the first breach is pending and firing at once.
        Assert.Equal([AlertState.Pending, AlertState.Firing], a.Select(e => e.State));
        Assert.Equal(2, b.Count);
        Assert.Equal(2, c.Count);
        Assert.Equal(3, tracker.Active().Count);
    }

    [Fact]
    public void Time_going_backwards_is_rejected_with_a_reason()
    {
        var tracker = new AlertTracker();
        tracker.Observe("j", "r", RulesTestData.Now, Breach);

        var ex = Assert.Throws<ArgumentException>(() => tracker.Observe("j", "r", RulesTestData.Now.AddSeconds(-1), Breach));
        Assert.Contains("before the previous", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Invalid_lifecycle_options_are_rejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new AlertTracker(new AlertTrackerOptions { ConsecutiveEvaluations = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new AlertTracker(new AlertTrackerOptions { CoolDown = TimeSpan.FromSeconds(-1) }));
    }
}
