using System.Text.Json;
using System.Text.Json.Serialization;

namespace Apm.Server;

/// <summary>One JVM as /api/jvms lists it.</summary>
public sealed record JvmSummary(
    string Id,
    string Host,
    int Pid,
    string MainClass,
    string JvmVersion,
    string JvmVendor,
    string Gc,
    DateTimeOffset FirstSeen,
    DateTimeOffset LastSeen,
    string Status,
    string? Reason);

/// <summary>One labelled series of [unix ms, value] points.</summary>
public sealed record MetricSeries(IReadOnlyDictionary<string, string> Labels, IReadOnlyList<double[]> Points);

/// <summary>The answer of /api/jvms/{id}/metrics/{metric}.</summary>
public sealed record MetricResponse(
    string JvmId,
    string Metric,
    string Unit,
    DateTimeOffset From,
    DateTimeOffset To,
    string? Step,
    IReadOnlyList<MetricSeries> Series);

/// <summary>/healthz: overall status, per-dependency checks, and every counter of the roles this process runs.</summary>
public sealed record HealthResponse(string Status, IReadOnlyDictionary<string, string> Checks, IReadOnlyDictionary<string, long>? Counters = null);

/// <summary>A role that exposes counters (samples dropped, dead letters, ...) on /healthz.</summary>
public interface ICounterSource
{
    /// <summary>Counter name (dotted, e.g. "collector.samples_dropped") and its current value.</summary>
    IEnumerable<KeyValuePair<string, long>> ReadCounters();
}

public sealed record ErrorResponse(string Error);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(IReadOnlyList<JvmSummary>))]
[JsonSerializable(typeof(MetricResponse))]
[JsonSerializable(typeof(HealthResponse))]
[JsonSerializable(typeof(ErrorResponse))]
[JsonSerializable(typeof(IReadOnlyList<AlertRecord>))]
[JsonSerializable(typeof(IReadOnlyList<Apm.Reports.ReportMeta>))]
[JsonSerializable(typeof(HeapDumpAccepted))]
[JsonSerializable(typeof(UploadAccepted))]
[JsonSerializable(typeof(CommandStatus))]
[JsonSerializable(typeof(IReadOnlyList<CommandStatus>))]
public sealed partial class ApiJsonContext : JsonSerializerContext;
