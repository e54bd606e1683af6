using System.Text.Json;
using System.Text.Json.Serialization;
using Apm.Dashboard.Panels;

namespace Apm.Dashboard.Live;

/// <summary>One fleet row as the browser updates it: texts already formatted by the server (the browser only sets textContent).</summary>
public sealed record FleetRowEvent(string Id, string Status, IReadOnlyList<string> Cells, IReadOnlyList<double?> Ratios, string Alerts, string Spark);

/// <summary>The "fleet" event: every row, and what the stale banner needs.</summary>
public sealed record FleetEvent(long NowMs, long? NewestSampleMs, long StaleAfterMs, bool Stale, IReadOnlyList<FleetRowEvent> Rows);

/// <summary>The "jvm" event: the last <see cref="DashboardOptions.LiveWindow"/> of every chart of one JVM, raw.</summary>
public sealed record JvmEvent(string JvmId, long NowMs, long LastSampleMs, long StaleAfterMs, IReadOnlyList<ChartData> Panels);

/// <summary>The "error" event: the poller could not read InfluxDB.</summary>
public sealed record ErrorEvent(long NowMs, string Message);

/// <summary>Source-generated JSON for events and chart data (no reflection; camelCase like the JSON API).</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(FleetEvent))]
[JsonSerializable(typeof(JvmEvent))]
[JsonSerializable(typeof(ErrorEvent))]
[JsonSerializable(typeof(ChartData))]
[JsonSerializable(typeof(IReadOnlyList<AlertMarker>))]
[JsonSerializable(typeof(Dictionary<string, string>))]
public sealed partial class DashboardJsonContext : JsonSerializerContext;

/// <summary>An alert drawn on the JVM page's time axis.</summary>
public sealed record AlertMarker(long TimeMs, string Rule, string State);
