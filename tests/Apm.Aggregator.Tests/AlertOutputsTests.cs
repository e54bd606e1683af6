using System.Text.Json;
using Apm.Aggregator.Alerting;
using Apm.Alerts.Rules;
using Apm.Influx;
using Apm.Protocol.V1;
using Google.Protobuf;

namespace Apm.Aggregator.Tests;

public sealed class AlertOutputsTests
{
    private static readonly DateTimeOffset Started = new(2026, 3, 1, 8, 0, 0, TimeSpan.Zero);

    private static AlertEvent Event(AlertState state, IReadOnlyDictionary<string, string> evidence) =>
        new("h:1:1|FinalizerBacklog|2026-03-01T08:00:00.000Z", "h:1:1", RuleIds.FinalizerBacklog, state, Started,
            state == AlertState.Pending ? null : Started.AddMinutes(1), state == AlertState.Resolved ? Started.AddMinutes(9) : null,
            "queue grows \"fast\"\nsecond line", evidence);

    [Fact]
    public void Top_classes_come_from_the_timer_pattern_and_from_the_backlog_list()
    {
        Assert.Equal(
            ["a.Stmt", "a.Stmt$1"],
            AlertOutputs.TopClasses(new Dictionary<string, string> { ["finalizableClass"] = "a.Stmt", ["timerTaskClass"] = "a.Stmt$1" }));
        Assert.Equal(
            ["com.x.Res", "[Lfoo.Bar;", "Odd (name"],
            AlertOutputs.TopClasses(new Dictionary<string, string> { ["topClasses"] = "com.x.Res (120), [Lfoo.Bar; (7), Odd (name (3)" }));
    }

    [Fact]
    public void Evidence_with_hostile_text_round_trips_through_its_JSON()
    {
        var evidence = new Dictionary<string, string> { ["topClasses"] = "<script>alert(1)</script> (5)", ["quote\"key"] = "line\nbreak\\" };
        using var doc = JsonDocument.Parse(AlertOutputs.EvidenceJson(evidence));
        Assert.Equal("<script>alert(1)</script> (5)", doc.RootElement.GetProperty("topClasses").GetString());
        Assert.Equal("line\nbreak\\", doc.RootElement.GetProperty("quote\"key").GetString());
    }

    [Fact]
    public void The_point_is_stamped_with_the_transition_time_and_carries_every_field()
    {
        var lines = new LineProtocolBuilder();
        AlertOutputs.AppendPoint(lines, Event(AlertState.Resolved, new Dictionary<string, string> { ["k"] = "v" }), new JvmIdentity { JvmId = "h:1:1", Host = "h", MainClass = "M" });
        var text = lines.ToString();
        Assert.StartsWith("apm.alert,alert_id=h:1:1|FinalizerBacklog|2026-03-01T08:00:00.000Z,host=h,jvm_id=h:1:1,rule=FinalizerBacklog ", text, StringComparison.Ordinal);
        Assert.Contains("state=\"resolved\"", text, StringComparison.Ordinal);
        Assert.Contains("resolved_at=" + Started.AddMinutes(9).ToUnixTimeMilliseconds() + "i", text, StringComparison.Ordinal);
        Assert.EndsWith(" " + (Started.AddMinutes(9).ToUnixTimeMilliseconds() * 1_000_000) + "\n", text, StringComparison.Ordinal);
        Assert.Contains("summary=\"queue grows \\\"fast\\\"", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Pending_transitions_are_not_mailed_firing_and_resolved_ones_are_with_the_JVM_name()
    {
        var evidence = new Dictionary<string, string> { ["topClasses"] = "com.x.Res (120)" };
        var jvm = new JvmIdentity { JvmId = "h:1:1", Host = "h", Pid = 1, MainClass = "com.acme.Main" };
        Assert.Null(AlertOutputs.ToNotification(Event(AlertState.Pending, evidence), jvm));
        var firing = AlertOutputs.ToNotification(Event(AlertState.Firing, evidence), jvm)!;
        Assert.Equal("firing", firing.State);
        Assert.Equal("com.acme.Main (pid 1 on h)", firing.JvmDisplayName);
        Assert.Equal(["com.x.Res"], firing.TopClasses);
        var resolved = AlertOutputs.ToNotification(Event(AlertState.Resolved, evidence), null)!;
        Assert.Equal("resolved", resolved.State);
        Assert.Equal("h:1:1", resolved.JvmDisplayName);
        Assert.Equal(Started.AddMinutes(9), resolved.ResolvedAt);
    }

    [Fact]
    public void The_topic_message_carries_the_episode_and_the_evidence()
    {
        var t = AlertOutputs.ToTransition(Event(AlertState.Firing, new Dictionary<string, string> { ["k"] = "v" }), null);
        var back = AlertTransition.Parser.ParseFrom(t.ToByteArray());
        Assert.Equal("firing", back.State);
        Assert.Equal("h:1:1", back.Jvm.JvmId);
        Assert.Equal(Started.ToUnixTimeMilliseconds(), back.StartedUnixMs);
        Assert.Equal(Started.AddMinutes(1).ToUnixTimeMilliseconds(), back.FiredUnixMs);
        Assert.Equal(0, back.ResolvedUnixMs);
        Assert.Equal("v", back.Evidence["k"]);
    }

    [Fact]
    public void Suggested_fixes_reach_the_point_the_topic_message_and_the_mail()
    {
        string[] fixes = ["Upgrade the driver.", "Shorter \"query\" timeout.", "Timer.purge()"];
        var e = Event(AlertState.Firing, new Dictionary<string, string>()) with { SuggestedFixes = fixes };

        var lines = new LineProtocolBuilder();
        AlertOutputs.AppendPoint(lines, e, null);
        Assert.Contains("suggested_fixes=\"[\\\"Upgrade the driver.\\\",", lines.ToString(), StringComparison.Ordinal);
        Assert.Equal(fixes, Apm.Alerts.AlertSchema.ParseFixes(Apm.Alerts.AlertSchema.FixesJson(fixes)));

        var back = AlertTransition.Parser.ParseFrom(AlertOutputs.ToTransition(e, null).ToByteArray());
        Assert.Equal(fixes, back.SuggestedFixes);

        Assert.Equal(fixes, AlertOutputs.ToNotification(e, null)!.SuggestedFixes);
    }

    [Fact]
    public void A_withdrawn_transition_is_stored_and_published_at_its_withdrawal_time_but_never_mailed()
    {
        var withdrawn = Event(AlertState.Pending, new Dictionary<string, string>()) with { State = AlertState.Withdrawn, ResolvedAt = Started.AddMinutes(2) };

        Assert.Null(AlertOutputs.ToNotification(withdrawn, null));
        Assert.Equal(Started.AddMinutes(2), AlertOutputs.TransitionTime(withdrawn));
        Assert.Equal("withdrawn", AlertOutputs.ToTransition(withdrawn, null).State);
        var lines = new LineProtocolBuilder();
        AlertOutputs.AppendPoint(lines, withdrawn, null);
        Assert.Contains("state=\"withdrawn\"", lines.ToString(), StringComparison.Ordinal);
    }
}
