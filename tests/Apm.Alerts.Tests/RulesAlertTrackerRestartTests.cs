using Apm.Alerts.Rules;

namespace Apm.Alerts.Tests;

/// <summary>The tracker's two lifecycle edges outside evaluation: a JVM that exits, and state restored after a restart.</summary>
public sealed class RulesAlertTrackerRestartTests
{
    private static readonly RuleResult Breach = new(true, "queue grows", new Dictionary<string, string> { ["pending"] = "1, 2, 3" }, []);
    private static readonly RuleResult Clear = new(false, "fine", new Dictionary<string, string>(), []);
    private static readonly AlertTrackerOptions Options = new() { ConsecutiveEvaluations = 1, ClearFor = TimeSpan.FromMinutes(2), CoolDown = TimeSpan.FromMinutes(30) };

    [Fact]
    public void A_JVM_that_exits_resolves_its_firing_alerts_once_and_is_forgotten()
    {
        var tracker = new AlertTracker(Options);
        var t = RulesTestData.Now;
        var fired = tracker.Observe("jvm-1", RuleIds.FinalizerBacklog, t, Breach);
        Assert.Contains(fired, e => e.State == AlertState.Firing);
        tracker.Observe("jvm-2", RuleIds.FinalizerBacklog, t, Breach);

        var retired = tracker.Retire("jvm-1", t.AddMinutes(1), "The JVM exited.");

        var resolved = Assert.Single(retired);
        Assert.Equal(AlertState.Resolved, resolved.State);
        Assert.Equal(fired[0].Id, resolved.Id);
        Assert.Equal(t.AddMinutes(1), resolved.ResolvedAt);
        Assert.StartsWith("The JVM exited.", resolved.Summary, StringComparison.Ordinal);
        Assert.Empty(tracker.Retire("jvm-1", t.AddMinutes(2), "again"));
        Assert.Equal(1, tracker.Count); // only jvm-2 is left
        Assert.Equal("jvm-2", Assert.Single(tracker.Active()).JvmId);
    }

    [Fact]
    public void A_restored_firing_alert_does_not_fire_again_and_resolves_with_its_original_id()
    {
        var before = new AlertTracker(Options);
        var t = RulesTestData.Now;
        var firing = before.Observe("jvm-1", RuleIds.TimerRetainedFinalizable, t, Breach).Single(e => e.State == AlertState.Firing);

        var after = new AlertTracker(Options);
        after.Restore(firing);
        Assert.Empty(after.Observe("jvm-1", RuleIds.TimerRetainedFinalizable, t.AddMinutes(1), Breach));
        Assert.Empty(after.Observe("jvm-1", RuleIds.TimerRetainedFinalizable, t.AddMinutes(2), Clear));
        var resolved = Assert.Single(after.Observe("jvm-1", RuleIds.TimerRetainedFinalizable, t.AddMinutes(4), Clear));
        Assert.Equal(AlertState.Resolved, resolved.State);
        Assert.Equal(firing.Id, resolved.Id);
        Assert.Equal(firing.FiredAt, resolved.FiredAt);
    }

    [Fact]
    public void A_restored_pending_alert_is_withdrawn_under_its_id_when_it_clears_or_fires_under_it_when_breaches_go_on()
    {
        var t = RulesTestData.Now;
        var pending = Assert.Single(new AlertTracker(new AlertTrackerOptions { ConsecutiveEvaluations = 3 }).Observe("jvm-1", RuleIds.GcOverhead, t, Breach));

        var cleared = new AlertTracker(Options);
        cleared.Restore(pending);
        Assert.Equal(AlertState.Pending, Assert.Single(cleared.Active()).State);
        var withdrawn = Assert.Single(cleared.Observe("jvm-1", RuleIds.GcOverhead, t.AddMinutes(1), Clear));
        Assert.Equal(AlertState.Withdrawn, withdrawn.State);
        Assert.Equal(pending.Id, withdrawn.Id);

        var breached = new AlertTracker(new AlertTrackerOptions { ConsecutiveEvaluations = 3, For = TimeSpan.FromHours(1) });
        breached.Restore(pending);
        Assert.Empty(breached.Observe("jvm-1", RuleIds.GcOverhead, t.AddMinutes(1), Breach)); // the restored one counts as the first
        var firing = Assert.Single(breached.Observe("jvm-1", RuleIds.GcOverhead, t.AddMinutes(2), Breach));
        Assert.Equal(AlertState.Firing, firing.State);
        Assert.Equal(pending.Id, firing.Id);
    }

    [Fact]
    public void Restore_ignores_alerts_that_are_resolved_or_withdrawn_and_keys_the_tracker_already_holds()
    {
        var tracker = new AlertTracker(Options);
        var t = RulesTestData.Now;
        var done = new AlertEvent("a|b|c", "jvm-1", RuleIds.GcOverhead, AlertState.Resolved, t, t, t, "s", new Dictionary<string, string>());
        tracker.Restore(done);
        tracker.Restore(done with { State = AlertState.Withdrawn, FiredAt = null });
        Assert.Equal(0, tracker.Count);

        var live = tracker.Observe("jvm-1", RuleIds.GcOverhead, t, Breach).Single(e => e.State == AlertState.Firing);
        tracker.Restore(live with { Id = "other", StartedAt = t.AddDays(-1) });
        Assert.Equal(live.Id, Assert.Single(tracker.Active()).Id);
    }

    [Fact]
    public void Too_little_data_neither_resolves_a_firing_alert_nor_counts_as_a_breach()
    {
        var tracker = new AlertTracker(new AlertTrackerOptions { ConsecutiveEvaluations = 2, For = TimeSpan.FromHours(1), ClearFor = TimeSpan.FromMinutes(2) });
        var t = RulesTestData.Now;
        var rule = new FinalizerBacklogRule(new FinalizerBacklogOptions { MinSamples = 6 });
        var empty = rule.Evaluate(new JvmRuleState("jvm-1", t, [], [], []));
        Assert.True(empty.InsufficientData);
        Assert.False(empty.Breached);

        // Firing, then an hour of "not enough samples" (a restarted aggregator, an unreachable JVM): still firing.
        tracker.Observe("jvm-1", RuleIds.FinalizerBacklog, t, Breach);
        Assert.Contains(tracker.Observe("jvm-1", RuleIds.FinalizerBacklog, t.AddMinutes(1), Breach), e => e.State == AlertState.Firing);
        for (var i = 2; i < 60; i++) Assert.Empty(tracker.Observe("jvm-1", RuleIds.FinalizerBacklog, t.AddMinutes(i), empty));
        Assert.Equal(AlertState.Firing, Assert.Single(tracker.Active()).State);

        // A real clear resolves it.
        tracker.Observe("jvm-1", RuleIds.FinalizerBacklog, t.AddMinutes(60), Clear);
        Assert.Equal(AlertState.Resolved, Assert.Single(tracker.Observe("jvm-1", RuleIds.FinalizerBacklog, t.AddMinutes(63), Clear)).State);

        // Insufficient results between two breaches do not make a pending alert fire either.
        tracker.Observe("jvm-2", RuleIds.FinalizerBacklog, t, Breach);
        for (var i = 1; i < 5; i++) Assert.Empty(tracker.Observe("jvm-2", RuleIds.FinalizerBacklog, t.AddMinutes(i), empty));
        Assert.Equal(AlertState.Pending, tracker.Active().Single(a => a.JvmId == "jvm-2").State);
    }
}
