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
        "jvm.memory.used", "jvm.memory.committed", "jvm.memory.limit",
        "jvm.gc.collections", "jvm.gc.time", "jvm.gc.overhead",
        "jvm.thread.count", "jvm.thread.daemon.count", "jvm.class.count", "jvm.class.unloaded",
        "jvm.safepoint.count", "jvm.safepoint.time", "jvm.uptime",
    ];

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
            _ => throw new InvalidDataException("message has no body"),
        };
    }

    /// <summary>Checks what the decoder cannot: the fields the points depend on are present.</summary>
    public static string? Validate(CollectorMessage message)
    {
        var jvm = message.BodyCase switch
        {
            CollectorMessage.BodyOneofCase.Sample => message.Sample.Jvm,
            CollectorMessage.BodyOneofCase.Status => message.Status.Jvm,
            _ => null,
        };
        if (message.BodyCase == CollectorMessage.BodyOneofCase.None) return "message has no body";
        if (jvm is null || string.IsNullOrEmpty(jvm.JvmId)) return "message has no JVM id";
        var time = message.BodyCase == CollectorMessage.BodyOneofCase.Sample ? message.Sample.TimeUnixNanos : message.Status.TimeUnixNanos;
        if (time <= 0) return "message has no time";
        return null;
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
            var gcNow = s.Collectors.Sum(c => c.TimeSeconds);
            var gcBefore = previous.Collectors.Sum(c => c.TimeSeconds);
            var overhead = Math.Clamp((gcNow - gcBefore) / (s.UptimeSeconds - previous.UptimeSeconds), 0, 1);
            lines.Measurement("jvm.gc.overhead").Tag("host", host).Tag("jvm_id", id).Field("value", overhead).Timestamp(t);
            n++;
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
