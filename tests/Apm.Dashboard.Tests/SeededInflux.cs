using Apm.Alerts;
using Apm.Influx;
using Apm.Testing;

namespace Apm.Dashboard.Tests;

/// <summary>
/// A real influxd filled with what the aggregator writes for three JVMs (ten minutes of 2-second samples), including a
/// JVM whose main class and finalizable class are HTML, a fourth JVM whose hsperfdata file the collector could not read
/// (only its status, written by the aggregator's own code), alerts in apm.alert and the report the firing alert asked
/// for in apm.report; plus the dashboard over it.
/// </summary>
public sealed class SeededInflux : IAsyncLifetime
{
    public const string JvmA = "host-a:100:1";
    public const string JvmB = "host-b:200:2";
    public const string JvmGone = "host-a:300:3";
    public const string JvmUnreadable = "host-c:400:4";
    public const string UnreadableReason = "hsperfdata: unsupported version 3.0";
    public const string HostileMain = "<script>alert(\"main\")</script>";
    public const string HostileClass = "<img src=x onerror=alert(1)>.Stmt";
    public const string HostileCommand = "app.jar --banner=<b onmouseover=alert(2)>hi</b>";
    public const string HostileEvidence = "</dd><script>alert('evidence')</script>";
    public const string HostileFix = "Purge the timer </li><script>alert('fix')</script>";
    public const string HostileFinding = "12,000 objects wait for finalization <b>x</b>";
    public const string ReportId = "0123456789abcdef0123456789abcdef";
    public const int Samples = 300;
    public const long Mi = 1024 * 1024;

    private InfluxServer? _influx;

    public InfluxOptions Options { get; private set; } = new();

    public DashboardHost Host { get; private set; } = null!;

    public string ReportsDirectory { get; } = Directory.CreateTempSubdirectory("apm-reports-").FullName;

    /// <summary>Time of the newest seeded sample (Unix ms).</summary>
    public long LastSampleMs { get; private set; }

    public async Task InitializeAsync()
    {
        _influx = await InfluxServer.StartAsync();
        Options = new InfluxOptions { Url = _influx.Url, Database = "apm", MaxRetries = 2 };
        using var writer = new InfluxWriter(Options);
        await writer.EnsureDatabaseAsync();
        var lines = new LineProtocolBuilder();
        var now = DateTimeOffset.UtcNow;
        var start = now.AddSeconds(-2 * Samples);
        for (var i = 0; i < Samples; i++)
        {
            var t = start.AddSeconds(2 * i);
            AppendJvm(lines, JvmA, "host-a", 100, "com.example.OrderService", t, i, 10 * Mi + (i * 1024), finalizers: 0);
            AppendJvm(lines, JvmB, "host-b", 200, HostileMain, t, i, 20 * Mi, finalizers: 7);
            if (i < Samples / 2) AppendJvm(lines, JvmGone, "host-a", 300, "com.example.Batch", t, i, 5 * Mi, finalizers: 0);
            LastSampleMs = t.ToUnixTimeMilliseconds();
        }

        lines.Measurement("apm.jvm.info").Tag("host", "host-a").Tag("jvm_id", JvmGone).Field("status", "gone").Field("reason", "process exited").Field("pid", 300L)
            .Timestamp(start.AddSeconds(Samples + 1));

        // What the aggregator stores for the collector's "unreadable" status of a JVM (SamplePoints is its writer).
        var unreadable = new Apm.Protocol.V1.JvmStatus
        {
            Jvm = new Apm.Protocol.V1.JvmIdentity { JvmId = JvmUnreadable, Host = "host-c", Pid = 400 },
            State = Apm.Protocol.V1.JvmStatus.Types.State.Unreadable,
            Reason = UnreadableReason,
            TimeUnixNanos = now.AddSeconds(-5).ToUnixTimeMilliseconds() * 1_000_000,
        };
        Apm.Aggregator.SamplePoints.Append(lines, new Apm.Protocol.V1.CollectorMessage { Status = unreadable }, null);

        var firedAt = now.AddMinutes(-5);
        var backlogStarted = now.AddMinutes(-6);
        AppendAlert(lines, JvmB, "host-b", HostileMain, "FinalizerBacklog", "firing", backlogStarted, firedAt, null,
            $"The finalization queue grew to 7 objects, most of them {HostileClass}", $$"""{"pending":"7","topClass":"{{HostileEvidence.Replace("\"", "\\\"", StringComparison.Ordinal)}}"}""",
            ["Find the slow finalize() method.", HostileFix]);
        AppendAlert(lines, JvmA, "host-a", "com.example.OrderService", "GcOverhead", "resolved", now.AddHours(-2), now.AddHours(-2).AddMinutes(1), now.AddHours(-1),
            "GC took 30 % of the time", """{"overhead":"0.3"}""");
        // The report the firing alert asked for, indexed as the aggregator's report consumer indexes it.
        lines.Measurement("apm.report").Tag("alert_id", AlertId(JvmB, "FinalizerBacklog", backlogStarted)).Tag("host", "host-b").Tag("jvm_id", JvmB).Tag("report_id", ReportId)
            .Field("trigger", "rule:FinalizerBacklog").Field("top_finding", HostileFinding).Field("dump_bytes", 200 * Mi).Field("command_id", "")
            .Timestamp(now.AddMinutes(-3));
        await writer.WriteAsync(lines);

        var store = new Apm.Reports.ReportStore(ReportsDirectory);
        store.Save(
            new Apm.Reports.ReportMeta(ReportId, JvmB, "host-b", HostileMain, now.AddMinutes(-3), "rule:FinalizerBacklog", "", "", HostileFinding, 200 * Mi),
            """{"summary":{},"findings":[{"kind":"finalizers","title":"x"}]}"""u8,
            "<!DOCTYPE html><html><body><h1>Triage report</h1></body></html>"u8);

        Host = await DashboardHost.StartAsync(Options, new Dictionary<string, string?> { ["Apm:Reports:Directory"] = ReportsDirectory });
    }

    private static void AppendJvm(LineProtocolBuilder lines, string id, string host, long pid, string main, DateTimeOffset t, int i, long eden, long finalizers)
    {
        lines.Measurement("apm.jvm.info").Tag("host", host).Tag("jvm_id", id).Field("status", "live").Field("pid", pid).Field("main_class", main)
            .Field("jvm_version", "17.0.15").Field("jvm_vendor", "Debian").Field("gc", "Copy, MarkSweepCompact")
            .Field("java_command", main == HostileMain ? HostileCommand : main).Timestamp(t);
        (string Pool, long Used, long Max)[] pools = [("eden", eden, 100 * Mi), ("survivor-0", 1 * Mi, 10 * Mi), ("old", 50 * Mi, 200 * Mi)];
        foreach (var (pool, used, max) in pools)
        {
            lines.Measurement("jvm.memory.used").Tag("host", host).Tag("jvm_id", id).Tag("pool", pool).Tag("type", "heap").Field("value", used).Timestamp(t);
            lines.Measurement("jvm.memory.committed").Tag("host", host).Tag("jvm_id", id).Tag("pool", pool).Tag("type", "heap").Field("value", max / 2).Timestamp(t);
            lines.Measurement("jvm.memory.limit").Tag("host", host).Tag("jvm_id", id).Tag("pool", pool).Tag("type", "heap").Field("value", max).Timestamp(t);
        }

        lines.Measurement("jvm.memory.used").Tag("host", host).Tag("jvm_id", id).Tag("pool", "metaspace").Tag("type", "non_heap").Field("value", 30 * Mi).Timestamp(t);
        lines.Measurement("jvm.memory.used_after_last_gc").Tag("host", host).Tag("jvm_id", id).Tag("pool", "old").Tag("type", "heap").Field("value", 40 * Mi).Timestamp(t);
        lines.Measurement("jvm.gc.collections").Tag("collector", "Copy").Tag("host", host).Tag("jvm_id", id).Field("value", (long)i).Timestamp(t);
        lines.Measurement("jvm.gc.time").Tag("collector", "Copy").Tag("host", host).Tag("jvm_id", id).Field("value", i * 0.01).Timestamp(t);
        lines.Measurement("jvm.gc.overhead").Tag("host", host).Tag("jvm_id", id).Field("value", 0.005).Timestamp(t);
        lines.Measurement("jvm.thread.count").Tag("host", host).Tag("jvm_id", id).Field("value", 12L).Timestamp(t);
        lines.Measurement("jvm.thread.daemon.count").Tag("host", host).Tag("jvm_id", id).Field("value", 8L).Timestamp(t);
        lines.Measurement("jvm.safepoint.count").Tag("host", host).Tag("jvm_id", id).Field("value", (long)(2 * i)).Timestamp(t);
        lines.Measurement("jvm.safepoint.time").Tag("host", host).Tag("jvm_id", id).Field("value", i * 0.001).Timestamp(t);
        lines.Measurement("jvm.finalizer.pending").Tag("host", host).Tag("jvm_id", id).Field("value", finalizers).Timestamp(t);
        if (finalizers > 0)
        {
            lines.Measurement("jvm.finalizer.pending").Tag("class", HostileClass).Tag("host", host).Tag("jvm_id", id).Field("value", finalizers).Timestamp(t);
        }

        if (i % 30 == 0)
        {
            lines.Measurement("jvm.finalizer.registered").Tag("host", host).Tag("jvm_id", id).Field("value", 1000L + i).Timestamp(t);
            lines.Measurement("jvm.class.instances").Tag("class", HostileClass).Tag("host", host).Tag("jvm_id", id).Field("value", 500L + i).Timestamp(t);
        }
    }

    private static void AppendAlert(LineProtocolBuilder lines, string jvm, string host, string main, string rule, string state, DateTimeOffset started, DateTimeOffset? fired, DateTimeOffset? resolved, string summary, string evidence,
        IReadOnlyList<string>? fixes = null)
    {
        var id = AlertId(jvm, rule, started);
        lines.Measurement(AlertSchema.Measurement).Tag(AlertSchema.HostTag, host).Tag(AlertSchema.JvmIdTag, jvm).Tag(AlertSchema.RuleTag, rule).Tag(AlertSchema.AlertIdTag, id)
            .Field(AlertSchema.StateField, state).Field(AlertSchema.SummaryField, summary).Field(AlertSchema.EvidenceField, evidence)
            .Field(AlertSchema.MainClassField, main)
            .Field(AlertSchema.SuggestedFixesField, AlertSchema.FixesJson(fixes ?? []))
            .Field(AlertSchema.StartedAtField, started.ToUnixTimeMilliseconds())
            .Field(AlertSchema.FiredAtField, fired?.ToUnixTimeMilliseconds() ?? 0)
            .Field(AlertSchema.ResolvedAtField, resolved?.ToUnixTimeMilliseconds() ?? 0)
            .Timestamp(resolved ?? fired ?? started);
    }

    private static string AlertId(string jvm, string rule, DateTimeOffset started) => jvm + "|" + rule + "|" + started.ToUnixTimeMilliseconds();

    public async Task DisposeAsync()
    {
        await Host.DisposeAsync();
        _influx?.Dispose();
        Directory.Delete(ReportsDirectory, recursive: true);
    }
}
