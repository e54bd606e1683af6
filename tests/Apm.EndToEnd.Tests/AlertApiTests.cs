using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Apm.Aggregator.Alerting;
using Apm.Alerts.Rules;
using Apm.Influx;
using Apm.Protocol.V1;

namespace Apm.EndToEnd.Tests;

/// <summary>GET /api/alerts over a real influxd holding transitions written by the aggregator's own point writer.</summary>
public sealed class AlertApiTests
{
    [Fact]
    public async Task Alerts_are_listed_by_their_latest_state_filtered_by_JVM_and_hostile_text_comes_back_as_data()
    {
        await using var pipeline = await Pipeline.StartAsync();
        var api = await pipeline.StartApiAsync();
        var t0 = DateTimeOffset.UtcNow.AddMinutes(-30);
        t0 = DateTimeOffset.FromUnixTimeMilliseconds(t0.ToUnixTimeMilliseconds());
        const string hostile = "<img src=x onerror=alert(1)> \"quoted\"\nnext line";
        var evidence = new Dictionary<string, string> { ["topClasses"] = hostile + " (3)", ["slopePerSecond"] = "12.5" };
        AlertEvent Ev(string jvm, string rule, AlertState state, int firedMin, int resolvedMin) => new(
            $"{jvm}|{rule}|{t0.UtcDateTime:yyyy-MM-ddTHH:mm:ss.fffZ}", jvm, rule, state, t0,
            firedMin > 0 ? t0.AddMinutes(firedMin) : null, resolvedMin > 0 ? t0.AddMinutes(resolvedMin) : null, hostile, evidence);
        var lines = new LineProtocolBuilder();
        var a = new JvmIdentity { JvmId = "alert-api:1:1", Host = "h1", MainClass = "com.acme.A" };
        var b = new JvmIdentity { JvmId = "alert-api:2:1", Host = "h2", MainClass = "com.acme.B" };
        // a: FinalizerBacklog pending → firing; a: GcOverhead pending → firing → resolved; b: OldGenGrowth pending only.
        AlertOutputs.AppendPoint(lines, Ev(a.JvmId, RuleIds.FinalizerBacklog, AlertState.Pending, 0, 0), a);
        AlertOutputs.AppendPoint(lines, Ev(a.JvmId, RuleIds.FinalizerBacklog, AlertState.Firing, 2, 0), a);
        AlertOutputs.AppendPoint(lines, Ev(a.JvmId, RuleIds.GcOverhead, AlertState.Pending, 0, 0), a);
        AlertOutputs.AppendPoint(lines, Ev(a.JvmId, RuleIds.GcOverhead, AlertState.Firing, 1, 0), a);
        AlertOutputs.AppendPoint(lines, Ev(a.JvmId, RuleIds.GcOverhead, AlertState.Resolved, 1, 20), a);
        AlertOutputs.AppendPoint(lines, Ev(b.JvmId, RuleIds.OldGenGrowth, AlertState.Pending, 0, 0), b);
        using (var writer = new InfluxWriter(pipeline.InfluxOptions)) await writer.WriteAsync(lines.ToString());

        var firing = await api.GetFromJsonAsync<JsonElement>("/api/alerts?state=firing");
        var f = Assert.Single(firing.EnumerateArray());
        Assert.Equal(RuleIds.FinalizerBacklog, f.GetProperty("rule").GetString());
        Assert.Equal("firing", f.GetProperty("state").GetString());
        Assert.Equal(a.JvmId, f.GetProperty("jvmId").GetString());
        Assert.Equal(t0, f.GetProperty("startedAt").GetDateTimeOffset());
        Assert.Equal(t0.AddMinutes(2), f.GetProperty("firedAt").GetDateTimeOffset());
        Assert.Equal(JsonValueKind.Null, f.GetProperty("resolvedAt").ValueKind);
        // Line protocol cannot hold a newline in a string field: it is stored as a space (the evidence is JSON inside, so
        // its newline survives as \n).
        Assert.Equal(hostile.Replace('\n', ' '), f.GetProperty("summary").GetString());
        Assert.Equal(hostile + " (3)", f.GetProperty("evidence").GetProperty("topClasses").GetString());
        Assert.Equal("com.acme.A", f.GetProperty("mainClass").GetString());
        Assert.Equal("h1", f.GetProperty("host").GetString());

        // Without a state: firing only (the default), same answer.
        Assert.Equal(firing.GetRawText(), (await api.GetFromJsonAsync<JsonElement>("/api/alerts")).GetRawText());

        var resolved = Assert.Single((await api.GetFromJsonAsync<JsonElement>("/api/alerts?state=resolved")).EnumerateArray());
        Assert.Equal(RuleIds.GcOverhead, resolved.GetProperty("rule").GetString());
        Assert.Equal(t0.AddMinutes(20), resolved.GetProperty("resolvedAt").GetDateTimeOffset());

        var all = await api.GetFromJsonAsync<JsonElement>("/api/alerts?state=all");
        // Newest transition first: the resolved one (t0+20m), then firing (t0+2m), then pending (t0).
        Assert.Equal(["resolved", "firing", "pending"], all.EnumerateArray().Select(x => x.GetProperty("state").GetString()));
        var onlyB = await api.GetFromJsonAsync<JsonElement>("/api/alerts?state=all&jvm=" + Uri.EscapeDataString(b.JvmId));
        Assert.Equal(RuleIds.OldGenGrowth, Assert.Single(onlyB.EnumerateArray()).GetProperty("rule").GetString());
        Assert.Equal(0, (await api.GetFromJsonAsync<JsonElement>("/api/alerts?state=all&jvm=x'%20OR%20'1'='1")).GetArrayLength());

        var raw = await api.GetStringAsync("/api/alerts?state=all");
        Assert.DoesNotContain("<img", raw, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.BadRequest, (await api.GetAsync("/api/alerts?state=burning")).StatusCode);
    }

    [Fact]
    public async Task A_pending_alert_that_clears_before_firing_leaves_the_pending_list_and_its_fixes_are_listed()
    {
        await using var pipeline = await Pipeline.StartAsync();
        var api = await pipeline.StartApiAsync();
        var jvm = new JvmIdentity { JvmId = "withdraw:1:1", Host = "h", MainClass = "M" };
        var tracker = new AlertTracker(new AlertTrackerOptions { ConsecutiveEvaluations = 3 });
        string[] fixes = ["Upgrade the driver.", "Use a <shorter> query timeout."];
        var breach = new RuleResult(true, "timer keeps statements", new Dictionary<string, string> { ["k"] = "v" }, fixes);
        var clear = new RuleResult(false, "fine", new Dictionary<string, string>(), []);
        var t0 = DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.AddMinutes(-10).ToUnixTimeMilliseconds());

        async Task StoreAsync(IReadOnlyList<AlertEvent> events)
        {
            var lines = new LineProtocolBuilder();
            foreach (var e in events) AlertOutputs.AppendPoint(lines, e, jvm);
            using var writer = new InfluxWriter(pipeline.InfluxOptions);
            await writer.WriteAsync(lines.ToString());
        }

        // One breach: pending, stored, listed as pending with the rule's fixes.
        await StoreAsync(tracker.Observe(jvm.JvmId, RuleIds.TimerRetainedFinalizable, t0, breach));
        var pending = Assert.Single((await api.GetFromJsonAsync<JsonElement>("/api/alerts?state=pending")).EnumerateArray());
        Assert.Equal(fixes, pending.GetProperty("suggestedFixes").EnumerateArray().Select(f => f.GetString()));

        // It clears before firing: the tracker withdraws it, the withdrawn point is stored, and it leaves the pending list
        // (and "all", since it never was an alert); state=withdrawn still shows it for whoever wants to know.
        var withdrawn = tracker.Observe(jvm.JvmId, RuleIds.TimerRetainedFinalizable, t0.AddMinutes(1), clear);
        Assert.Equal(AlertState.Withdrawn, Assert.Single(withdrawn).State);
        await StoreAsync(withdrawn);
        Assert.Equal(0, (await api.GetFromJsonAsync<JsonElement>("/api/alerts?state=pending")).GetArrayLength());
        Assert.Equal(0, (await api.GetFromJsonAsync<JsonElement>("/api/alerts?state=all")).GetArrayLength());
        var listed = Assert.Single((await api.GetFromJsonAsync<JsonElement>("/api/alerts?state=withdrawn")).EnumerateArray());
        Assert.Equal(pending.GetProperty("id").GetString(), listed.GetProperty("id").GetString());
        Assert.Equal(t0.AddMinutes(1), listed.GetProperty("resolvedAt").GetDateTimeOffset());
        Assert.Equal(JsonValueKind.Null, listed.GetProperty("firedAt").ValueKind);
        // A withdrawn episode is not restored either.
        Assert.Empty(await AlertRestore.LoadActiveAsync(pipeline.Query, TimeSpan.FromDays(1), CancellationToken.None));
    }

    [Fact]
    public async Task A_restarted_aggregator_restores_the_firing_and_pending_alerts_and_ends_them_under_their_original_ids()
    {
        await using var pipeline = await Pipeline.StartAsync();
        var t0 = DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.AddMinutes(-10).ToUnixTimeMilliseconds());
        var jvm = new JvmIdentity { JvmId = "restore:1:1", Host = "h", MainClass = "M" };
        var evidence = new Dictionary<string, string> { ["topClasses"] = "com.x.Res (9)" };
        var firing = new AlertEvent($"restore:1:1|FinalizerBacklog|{t0.UtcDateTime:yyyy-MM-ddTHH:mm:ss.fffZ}", jvm.JvmId, RuleIds.FinalizerBacklog,
            AlertState.Firing, t0, t0.AddMinutes(1), null, "queue grows", evidence) { SuggestedFixes = ["Purge it."] };
        var lines = new LineProtocolBuilder();
        AlertOutputs.AppendPoint(lines, firing with { State = AlertState.Pending, FiredAt = null }, jvm);
        AlertOutputs.AppendPoint(lines, firing, jvm);
        // Another episode that already resolved (not restored), and one still pending (restored as pending).
        var done = firing with { Id = "restore:1:1|GcOverhead|x", Rule = RuleIds.GcOverhead, State = AlertState.Resolved, ResolvedAt = t0.AddMinutes(5) };
        AlertOutputs.AppendPoint(lines, done with { State = AlertState.Firing, ResolvedAt = null }, jvm);
        AlertOutputs.AppendPoint(lines, done, jvm);
        AlertOutputs.AppendPoint(lines, firing with { Id = "restore:1:1|OldGenGrowth|y", Rule = RuleIds.OldGenGrowth, State = AlertState.Pending, FiredAt = null }, jvm);
        using (var writer = new InfluxWriter(pipeline.InfluxOptions)) await writer.WriteAsync(lines.ToString());

        var active = await AlertRestore.LoadActiveAsync(pipeline.Query, TimeSpan.FromDays(1), CancellationToken.None);
        Assert.Equal(2, active.Count);
        var pending = Assert.Single(active, a => a.State == AlertState.Pending);
        Assert.Equal("restore:1:1|OldGenGrowth|y", pending.Id);
        Assert.Null(pending.FiredAt);
        var restored = Assert.Single(active, a => a.State == AlertState.Firing);
        Assert.Equal(firing.Id, restored.Id);
        Assert.Equal(t0, restored.StartedAt);
        Assert.Equal(t0.AddMinutes(1), restored.FiredAt);
        Assert.Equal("com.x.Res (9)", restored.Evidence["topClasses"]);
        Assert.Equal(["Purge it."], restored.SuggestedFixes);

        // The new instance's engine: the queue is empty now, so once it has enough readings the alert resolves, once.
        var engine = new RuleEngine(
            new RuleSet(new FinalizerBacklogOptions { Window = TimeSpan.FromSeconds(30) }, disabled: new HashSet<string> { RuleIds.GcOverhead, RuleIds.OldGenGrowth, RuleIds.TimerRetainedFinalizable }),
            new AlertingOptions { Lifecycle = new AlertTrackerOptions { ClearFor = TimeSpan.FromSeconds(10) } });
        engine.Tracker.Restore(restored);
        var events = new List<AlertEvent>();
        var now = DateTimeOffset.UtcNow;
        for (var i = 0; i < 40; i++)
        {
            events.AddRange(engine.Observe(new CollectorMessage
            {
                Finalizer = new FinalizerSample { Jvm = jvm, TimeUnixNanos = now.AddSeconds(i).ToUnixTimeMilliseconds() * 1_000_000, PendingTotal = 0 },
            }));
        }

        var resolved = Assert.Single(events);
        Assert.Equal(AlertState.Resolved, resolved.State);
        Assert.Equal(firing.Id, resolved.Id);
    }
}
