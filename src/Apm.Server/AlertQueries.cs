using System.Globalization;
using Apm.Alerts;
using Apm.Influx;

namespace Apm.Server;

/// <summary>One alert as the API and the dashboard show it: its latest state.</summary>
/// <param name="Id">Stable id of the episode (<c>jvmId|ruleId|startedAt</c>).</param>
/// <param name="JvmId">The JVM.</param>
/// <param name="Rule">Rule id, e.g. <c>FinalizerBacklog</c>.</param>
/// <param name="State"><c>pending</c>, <c>firing</c>, <c>resolved</c> or <c>withdrawn</c>.</param>
/// <param name="StartedAt">First breach.</param>
/// <param name="FiredAt">When it fired; null while pending.</param>
/// <param name="ResolvedAt">When it resolved; null until then.</param>
/// <param name="Summary">The rule's explanation (contains class names from the JVM: untrusted).</param>
/// <param name="Evidence">The numbers behind the verdict, by stable key (untrusted text).</param>
/// <param name="Host">The JVM's host.</param>
/// <param name="MainClass">The JVM's main class (untrusted).</param>
/// <param name="ReportId">The heap-dump triage report this alert asked for, once it is stored (see /api/reports).</param>
public sealed record AlertRecord(
    string Id,
    string JvmId,
    string Rule,
    string State,
    DateTimeOffset StartedAt,
    DateTimeOffset? FiredAt,
    DateTimeOffset? ResolvedAt,
    string Summary,
    IReadOnlyDictionary<string, string> Evidence,
    string Host = "",
    string MainClass = "",
    string? ReportId = null)
{
    /// <summary>What to do, in order of preference (the rule's suggested fixes; untrusted text only in that it is stored); may be empty.</summary>
    public IReadOnlyList<string> SuggestedFixes { get; init; } = [];
}

/// <summary>
/// Reads alerts from InfluxDB (<see cref="AlertSchema"/>): the latest point of every alert series within the lookback.
/// One query per call; cost grows with the number of alerts in the lookback (alerts are rare: one series per episode).
/// </summary>
public sealed class AlertQueries(InfluxQueryClient influx)
{
    /// <summary>The state filters <see cref="ListAsync"/> accepts.</summary>
    public static readonly IReadOnlySet<string> States = new HashSet<string>(StringComparer.Ordinal) { "firing", "resolved", "pending", "withdrawn", "all" };

    private const string Withdrawn = "withdrawn";

    /// <summary>How far back alerts are listed.</summary>
    public TimeSpan Lookback { get; init; } = TimeSpan.FromDays(30);

    /// <summary>
    /// Alerts whose latest state matches <paramref name="state"/> (<c>firing</c>, <c>resolved</c>, <c>pending</c>,
    /// <c>withdrawn</c> or <c>all</c>), optionally for one JVM; newest transition first. <c>all</c> leaves out withdrawn
    /// episodes (a pending alert that cleared before firing was never an alert). Throws <see cref="ArgumentException"/>
    /// on an unknown state.
    /// </summary>
    public async Task<IReadOnlyList<AlertRecord>> ListAsync(string state, string? jvmId, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (!States.Contains(state)) throw new ArgumentException($"state must be one of firing, resolved, pending, withdrawn, all; not '{state}'.", nameof(state));
        var where = string.Create(CultureInfo.InvariantCulture, $"time > now() - {(long)Lookback.TotalSeconds}s");
        if (!string.IsNullOrEmpty(jvmId)) where += $" AND {InfluxQl.QuoteIdentifier(AlertSchema.JvmIdTag)} = {InfluxQl.QuoteString(jvmId)}";
        var query = $"SELECT * FROM {InfluxQl.QuoteIdentifier(AlertSchema.Measurement)} WHERE {where} " +
                    $"GROUP BY {InfluxQl.QuoteIdentifier(AlertSchema.AlertIdTag)} ORDER BY time DESC LIMIT 1";
        // The reports the alerts asked for (apm.report, written by the aggregator when a report is stored).
        query += $"; SELECT * FROM \"apm.report\" WHERE {where} GROUP BY {InfluxQl.QuoteIdentifier(AlertSchema.AlertIdTag)} ORDER BY time DESC LIMIT 1";
        var result = await influx.QueryAsync(query, ct).ConfigureAwait(false);
        var reports = new Dictionary<string, string>(StringComparer.Ordinal);
        if (result.Results.Count > 1)
        {
            foreach (var s in result.Results[1].Series)
            {
                if (s.Tags.GetValueOrDefault(AlertSchema.AlertIdTag) is { Length: > 0 } alertId && s.GetString(0, "report_id") is { Length: > 0 } report)
                    reports[alertId] = report;
            }
        }

        var list = new List<(long Time, AlertRecord Alert)>();
        foreach (var s in result.Results.Count > 0 ? result.Results[0].Series : [])
        {
            if (s.Values.Count == 0) continue;
            var alert = Read(s);
            if (alert is null || (state == "all" ? alert.State == Withdrawn : alert.State != state)) continue;
            list.Add((s.GetTime(0) ?? 0, reports.TryGetValue(alert.Id, out var r) ? alert with { ReportId = r } : alert));
        }

        list.Sort((a, b) => b.Time != a.Time ? b.Time.CompareTo(a.Time) : string.CompareOrdinal(a.Alert.Id, b.Alert.Id));
        return list.Select(a => a.Alert).ToList();
    }

    private static AlertRecord? Read(InfluxSeries s)
    {
        var id = s.Tags.GetValueOrDefault(AlertSchema.AlertIdTag);
        var jvm = s.GetString(0, AlertSchema.JvmIdTag);
        var rule = s.GetString(0, AlertSchema.RuleTag);
        var state = s.GetString(0, AlertSchema.StateField);
        if (string.IsNullOrEmpty(id) || jvm is null || rule is null || state is null) return null;
        return new AlertRecord(
            id,
            jvm,
            rule,
            state,
            Ms(s.GetInt64(0, AlertSchema.StartedAtField)) ?? DateTimeOffset.UnixEpoch,
            Ms(s.GetInt64(0, AlertSchema.FiredAtField)),
            Ms(s.GetInt64(0, AlertSchema.ResolvedAtField)),
            s.GetString(0, AlertSchema.SummaryField) ?? string.Empty,
            AlertSchema.ParseEvidence(s.GetString(0, AlertSchema.EvidenceField)),
            s.GetString(0, AlertSchema.HostTag) ?? string.Empty,
            s.GetString(0, AlertSchema.MainClassField) ?? string.Empty)
        {
            SuggestedFixes = AlertSchema.ParseFixes(s.GetString(0, AlertSchema.SuggestedFixesField)),
        };
    }

    private static DateTimeOffset? Ms(long? ms) => ms is > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(ms.Value) : null;
}
