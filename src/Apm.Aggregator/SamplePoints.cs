using Apm.Influx;
using Apm.Protocol.V1;

namespace Apm.Aggregator;

/// <summary>
/// Turns collector messages into InfluxDB points named after the OpenTelemetry JVM runtime conventions.
/// Every point takes its time and tags from the sample itself, so a replayed message writes identical
/// points, which InfluxDB overwrites: replays are harmless.
/// </summary>
public static class SamplePoints
{
    /// <summary>Measurement with one point per sample carrying the JVM's identity and state as fields.</summary>
    public const string InfoMeasurement = "apm.jvm.info";

    /// <summary>The metrics the aggregator writes (the API accepts these names).</summary>
    public static readonly IReadOnlyList<string> Metrics =
    [
        "jvm.memory.used", "jvm.memory.committed", "jvm.memory.limit", "jvm.memory.used_after_last_gc",
        "jvm.gc.collections", "jvm.gc.time", "jvm.gc.overhead",
        "jvm.thread.count", "jvm.thread.daemon.count", "jvm.class.count", "jvm.class.unloaded",
        "jvm.safepoint.count", "jvm.safepoint.time", "jvm.uptime",
        "jvm.finalizer.pending", "jvm.finalizer.registered", "jvm.class.instances", "jvm.class.bytes",
    ];

    /// <summary>
    /// Measurement of attach outcomes, one point per change: field value (1 = works again, 0 = failing), failure,
    /// reason and command.
    /// </summary>
    public const string AttachMeasurement = "apm.jvm.attach";

    /// <summary>
    /// Appends the points of <paramref name="message"/> to <paramref name="lines"/> and returns how many.
    /// <paramref name="previous"/> is the JVM's previous sample when known (for rates), else null.
    /// </summary>
    public static int Append(LineProtocolBuilder lines, CollectorMessage message, JvmSample? previous)
    {
        ArgumentNullException.ThrowIfNull(lines);
        ArgumentNullException.ThrowIfNull(message);
        return message.BodyCase switch
        {
            CollectorMessage.BodyOneofCase.Sample => AppendSample(lines, message.Sample, previous),
            CollectorMessage.BodyOneofCase.Status => AppendStatus(lines, message.Status),
            CollectorMessage.BodyOneofCase.Finalizer => AppendFinalizer(lines, message.Finalizer),
            CollectorMessage.BodyOneofCase.Histogram => AppendHistogram(lines, message.Histogram),
            CollectorMessage.BodyOneofCase.AttachStatus => AppendAttachStatus(lines, message.AttachStatus),
            CollectorMessage.BodyOneofCase.CommandResult => AppendCommandResult(lines, message.CommandResult),
            _ => throw new InvalidDataException("message has no body"),
        };
    }

    /// <summary>Measurement of collector command progress: one point per result (tags command_id, jvm_id, host).</summary>
    public const string CommandMeasurement = "apm.command";

    private static int AppendCommandResult(LineProtocolBuilder lines, CommandResult r)
    {
        lines.Measurement(CommandMeasurement).Tag("command_id", r.CommandId).Tag("host", r.Jvm.Host).Tag("jvm_id", r.Jvm.JvmId)
            .Field("state", r.State.ToString().ToLowerInvariant())
            .Field("reason", r.Reason)
            .Field("failure", r.Failure)
            .Field("report_id", r.ReportId)
            .Field("trigger", r.Trigger)
            .Field("alert_id", r.AlertId)
            .Timestamp(r.TimeUnixNanos);
        return 1;
    }

    /// <summary>
    /// The <c>requested</c> step of a command this aggregator sends (a rule asking for a heap dump), in the shape the API
    /// writes for the commands it sends, so <c>GET /api/commands/{id}</c> shows the command before the collector answers.
    /// </summary>
    public static int AppendCommandRequested(LineProtocolBuilder lines, CollectorCommand command)
    {
        ArgumentNullException.ThrowIfNull(lines);
        ArgumentNullException.ThrowIfNull(command);
        lines.Measurement(CommandMeasurement).Tag("command_id", command.CommandId).Tag("host", command.TargetHost).Tag("jvm_id", command.JvmId)
            .Field("state", "requested")
            .Field("trigger", command.Trigger)
            .Field("alert_id", command.AlertId)
            .Field("requested_by", command.RequestedBy)
            .Field("expires_unix_ms", command.ExpiresUnixMs)
            .Timestamp(DateTimeOffset.FromUnixTimeMilliseconds(command.IssuedUnixMs));
        return 1;
    }

    /// <summary>The JVM a (validated) message is about.</summary>
    public static JvmIdentity JvmOf(CollectorMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        return message.BodyCase switch
        {
            CollectorMessage.BodyOneofCase.Sample => message.Sample.Jvm,
            CollectorMessage.BodyOneofCase.Status => message.Status.Jvm,
            CollectorMessage.BodyOneofCase.Finalizer => message.Finalizer.Jvm,
            CollectorMessage.BodyOneofCase.Histogram => message.Histogram.Jvm,
            CollectorMessage.BodyOneofCase.AttachStatus => message.AttachStatus.Jvm,
            CollectorMessage.BodyOneofCase.CommandResult => message.CommandResult.Jvm,
            _ => throw new InvalidDataException("message has no body"),
        };
    }

    /// <summary>Checks what the decoder cannot: the fields the points depend on are present.</summary>
    public static string? Validate(CollectorMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        var (jvm, time) = message.BodyCase switch
        {
            CollectorMessage.BodyOneofCase.Sample => (message.Sample.Jvm, message.Sample.TimeUnixNanos),
            CollectorMessage.BodyOneofCase.Status => (message.Status.Jvm, message.Status.TimeUnixNanos),
            CollectorMessage.BodyOneofCase.Finalizer => (message.Finalizer.Jvm, message.Finalizer.TimeUnixNanos),
            CollectorMessage.BodyOneofCase.Histogram => (message.Histogram.Jvm, message.Histogram.TimeUnixNanos),
            CollectorMessage.BodyOneofCase.AttachStatus => (message.AttachStatus.Jvm, message.AttachStatus.TimeUnixNanos),
            CollectorMessage.BodyOneofCase.CommandResult => (message.CommandResult.Jvm, message.CommandResult.TimeUnixNanos),
            _ => (null, 0L),
        };
        if (message.BodyCase == CollectorMessage.BodyOneofCase.None) return "message has no body";
        if (jvm is null || string.IsNullOrEmpty(jvm.JvmId)) return "message has no JVM id";
        if (time <= 0) return "message has no time";
        if (message.BodyCase == CollectorMessage.BodyOneofCase.Finalizer && message.Finalizer.Classes.Any(c => string.IsNullOrEmpty(c.ClassName)))
            return "finalizer sample has a class without a name";
        if (message.BodyCase == CollectorMessage.BodyOneofCase.CommandResult && string.IsNullOrEmpty(message.CommandResult.CommandId))
            return "command result has no command id";
        if (message.BodyCase == CollectorMessage.BodyOneofCase.Histogram && message.Histogram.Rows.Any(r => string.IsNullOrEmpty(r.ClassName)))
            return "histogram sample has a row without a class name";
        return null;
    }

    /// <summary>
    /// jvm.finalizer.pending: the total as a series without a <c>class</c> tag, and one series per class with
    /// it (so the per-class series sum to the total; never add the total to them).
    /// </summary>
    private static int AppendFinalizer(LineProtocolBuilder lines, FinalizerSample f)
    {
        var t = f.TimeUnixNanos;
        var id = f.Jvm.JvmId;
        var host = f.Jvm.Host;
        var n = Scalar(lines, "jvm.finalizer.pending", id, host, f.PendingTotal, t);
        foreach (var c in f.Classes)
        {
            lines.Measurement("jvm.finalizer.pending").Tag("class", c.ClassName).Tag("host", host).Tag("jvm_id", id).Field("value", c.Count).Timestamp(t);
            n++;
        }

        return n;
    }

    /// <summary>
    /// jvm.finalizer.registered (instances of java.lang.ref.Finalizer), and jvm.class.instances / jvm.class.bytes:
    /// per kept class with a <c>class</c> tag, and the whole heap's total as the series without one.
    /// </summary>
    private static int AppendHistogram(LineProtocolBuilder lines, ClassHistogramSample h)
    {
        var t = h.TimeUnixNanos;
        var id = h.Jvm.JvmId;
        var host = h.Jvm.Host;
        var n = Scalar(lines, "jvm.finalizer.registered", id, host, h.FinalizerRegistered, t);
        n += Scalar(lines, "jvm.class.instances", id, host, h.TotalInstances, t);
        n += Scalar(lines, "jvm.class.bytes", id, host, h.TotalBytes, t);
        foreach (var r in h.Rows)
        {
            lines.Measurement("jvm.class.instances").Tag("class", r.ClassName).Tag("host", host).Tag("jvm_id", id).Field("value", r.Instances).Timestamp(t);
            lines.Measurement("jvm.class.bytes").Tag("class", r.ClassName).Tag("host", host).Tag("jvm_id", id).Field("value", r.Bytes).Timestamp(t);
            n += 2;
        }

        return n;
    }

    private static int AppendAttachStatus(LineProtocolBuilder lines, AttachStatus a)
    {
        lines.Measurement(AttachMeasurement).Tag("host", a.Jvm.Host).Tag("jvm_id", a.Jvm.JvmId)
            .Field("value", a.Ok ? 1L : 0L)
            .Field("failure", a.Failure)
            .Field("reason", a.Reason)
            .Field("command", a.Command)
            .Timestamp(a.TimeUnixNanos);
        return 1;
    }

    private static int AppendSample(LineProtocolBuilder lines, JvmSample s, JvmSample? previous)
    {
        var t = s.TimeUnixNanos;
        var id = s.Jvm.JvmId;
        var host = s.Jvm.Host;
        var n = 0;
        foreach (var space in s.Spaces)
        {
            n += Memory(lines, "jvm.memory.used", id, host, space, space.UsedBytes, t);
            n += Memory(lines, "jvm.memory.committed", id, host, space, space.CommittedBytes, t);
            if (space.MaxBytes >= 0) n += Memory(lines, "jvm.memory.limit", id, host, space, space.MaxBytes, t);
        }

        foreach (var c in s.Collectors)
        {
            lines.Measurement("jvm.gc.collections").Tag("collector", c.Name).Tag("host", host).Tag("jvm_id", id).Field("value", c.Invocations).Timestamp(t);
            lines.Measurement("jvm.gc.time").Tag("collector", c.Name).Tag("host", host).Tag("jvm_id", id).Field("value", c.TimeSeconds).Timestamp(t);
            n += 2;
        }

        // GC overhead: share of the wall time between two samples spent in collections (0..1).
        if (previous != null && previous.Jvm.JvmId == id && s.UptimeSeconds > previous.UptimeSeconds)
        {
            var gcNow = GcSeconds(s);
            var gcBefore = GcSeconds(previous);
            var overhead = Math.Clamp((gcNow - gcBefore) / (s.UptimeSeconds - previous.UptimeSeconds), 0, 1);
            lines.Measurement("jvm.gc.overhead").Tag("host", host).Tag("jvm_id", id).Field("value", overhead).Timestamp(t);
            n++;
        }

        // Old generation after GC: its occupancy at the first sample after any collection ended (young collections
        // promote into it, old ones compact it). OpenTelemetry's name for "used after the most recent GC".
        if (previous != null && previous.Jvm.JvmId == id && Invocations(s) > Invocations(previous))
        {
            foreach (var space in s.Spaces)
            {
                if (space.Pool == "old") n += Memory(lines, "jvm.memory.used_after_last_gc", id, host, space, space.UsedBytes, t);
            }
        }

        n += Scalar(lines, "jvm.thread.count", id, host, s.LiveThreads, t);
        n += Scalar(lines, "jvm.thread.daemon.count", id, host, s.DaemonThreads, t);
        n += Scalar(lines, "jvm.class.count", id, host, s.LoadedClasses, t);
        n += Scalar(lines, "jvm.class.unloaded", id, host, s.UnloadedClasses, t);
        n += Scalar(lines, "jvm.safepoint.count", id, host, s.Safepoints, t);
        lines.Measurement("jvm.safepoint.time").Tag("host", host).Tag("jvm_id", id).Field("value", s.SafepointTimeSeconds).Timestamp(t);
        lines.Measurement("jvm.uptime").Tag("host", host).Tag("jvm_id", id).Field("value", s.UptimeSeconds).Timestamp(t);
        n += 2;

        var j = s.Jvm;
        lines.Measurement(InfoMeasurement).Tag("host", host).Tag("jvm_id", id)
            .Field("status", "live")
            .Field("pid", (long)j.Pid)
            .Field("main_class", j.MainClass)
            .Field("java_command", j.JavaCommand)
            .Field("jvm_version", j.JvmVersion)
            .Field("jvm_vendor", j.JvmVendor)
            .Field("java_version", j.JavaVersion)
            .Field("gc", string.Join(", ", j.GcNames))
            .Field("start_time_ms", j.StartTimeUnixMs)
            .Field("sequence", (long)s.Sequence)
            .Field("last_gc_cause", s.LastGcCause)
            .Timestamp(t);
        return n + 1;
    }

    private static double GcSeconds(JvmSample s)
    {
        var total = 0.0;
        foreach (var c in s.Collectors) total += c.TimeSeconds;
        return total;
    }

    private static long Invocations(JvmSample s)
    {
        long total = 0;
        foreach (var c in s.Collectors) total += c.Invocations;
        return total;
    }

    private static int AppendStatus(LineProtocolBuilder lines, JvmStatus s)
    {
        var state = s.State switch
        {
            JvmStatus.Types.State.Live => "live",
            JvmStatus.Types.State.Gone => "gone",
            JvmStatus.Types.State.Unreadable => "unreadable",
            _ => "unknown",
        };
        lines.Measurement(InfoMeasurement).Tag("host", s.Jvm.Host).Tag("jvm_id", s.Jvm.JvmId)
            .Field("status", state)
            .Field("reason", s.Reason)
            .Field("pid", (long)s.Jvm.Pid)
            .Timestamp(s.TimeUnixNanos);
        return 1;
    }

    private static int Memory(LineProtocolBuilder lines, string measurement, string id, string host, MemorySpace space, long value, long t)
    {
        lines.Measurement(measurement).Tag("host", host).Tag("jvm_id", id).Tag("pool", space.Pool).Tag("type", space.Type).Field("value", value).Timestamp(t);
        return 1;
    }

    private static int Scalar(LineProtocolBuilder lines, string measurement, string id, string host, long value, long t)
    {
        lines.Measurement(measurement).Tag("host", host).Tag("jvm_id", id).Field("value", value).Timestamp(t);
        return 1;
    }
}
