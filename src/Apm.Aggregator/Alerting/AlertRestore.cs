using System.Globalization;
using Apm.Alerts;
using Apm.Alerts.Rules;
using Apm.Influx;

namespace Apm.Aggregator.Alerting;

/// <summary>
/// Reads the alerts whose latest stored state is firing or pending, so a restarted aggregator (or the one that takes
/// over a partition) puts them back into its tracker: they then resolve, fire or are withdrawn under their original id
/// when the data says so, instead of staying "firing" or "pending" forever in the store while a second episode starts.
/// </summary>
public static class AlertRestore
{
    /// <summary>Firing and pending alerts whose last transition lies within <paramref name="lookback"/>; one query.</summary>
    public static async Task<IReadOnlyList<AlertEvent>> LoadActiveAsync(InfluxQueryClient influx, TimeSpan lookback, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(influx);
        var query = string.Create(CultureInfo.InvariantCulture,
            $"SELECT * FROM {InfluxQl.QuoteIdentifier(AlertSchema.Measurement)} WHERE time > now() - {(long)lookback.TotalSeconds}s " +
            $"GROUP BY {InfluxQl.QuoteIdentifier(AlertSchema.AlertIdTag)} ORDER BY time DESC LIMIT 1");
        var result = await influx.QueryAsync(query, ct).ConfigureAwait(false);
        var list = new List<AlertEvent>();
        foreach (var s in result.Series)
        {
            var state = s.Values.Count == 0 ? null : s.GetString(0, AlertSchema.StateField);
            if (state is not ("firing" or "pending")) continue;
            var id = s.Tags.GetValueOrDefault(AlertSchema.AlertIdTag);
            var jvm = s.GetString(0, AlertSchema.JvmIdTag);
            var rule = s.GetString(0, AlertSchema.RuleTag);
            if (string.IsNullOrEmpty(id) || string.IsNullOrEmpty(jvm) || string.IsNullOrEmpty(rule)) continue;
            var started = DateTimeOffset.FromUnixTimeMilliseconds(s.GetInt64(0, AlertSchema.StartedAtField) ?? 0);
            DateTimeOffset? fired = state == "pending" ? null
                : s.GetInt64(0, AlertSchema.FiredAtField) is long f and > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(f) : started;
            list.Add(new AlertEvent(id, jvm, rule, state == "pending" ? AlertState.Pending : AlertState.Firing, started, fired, null,
                s.GetString(0, AlertSchema.SummaryField) ?? string.Empty, AlertSchema.ParseEvidence(s.GetString(0, AlertSchema.EvidenceField)))
            {
                SuggestedFixes = AlertSchema.ParseFixes(s.GetString(0, AlertSchema.SuggestedFixesField)),
            });
        }

        return list;
    }
}
