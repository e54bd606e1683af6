using System.Globalization;
using System.Text.RegularExpressions;
using Apm.Influx;
using Apm.Protocol.V1;

namespace Apm.Server;

/// <summary>One step of a command's progress, as the collector (or, for <c>requested</c>, the API) recorded it.</summary>
/// <param name="State"><c>requested</c> (sent by this API), then the collector's <c>accepted</c>, <c>running</c>, <c>done</c> or <c>failed</c>.</param>
/// <param name="Time">When the step happened.</param>
/// <param name="Failure">Machine-readable refusal (<c>busy</c>, <c>disk-full</c>, ...; see agent-protocol/PROTOCOL.md), or null.</param>
/// <param name="Reason">Operator text from the collector (may name JVM classes: untrusted), or null.</param>
/// <param name="ReportId">The triage report, on <c>done</c>.</param>
public sealed record CommandStep(string State, DateTimeOffset Time, string? Failure, string? Reason, string? ReportId);

/// <summary>A heap-dump command and its progress, oldest step first.</summary>
/// <param name="Id">The command id.</param>
/// <param name="JvmId">The target JVM.</param>
/// <param name="Host">The JVM's host (whose collector acts on it).</param>
/// <param name="Trigger"><c>rule:&lt;RuleId&gt;</c>, <c>api</c>, <c>cli</c> or <c>dashboard</c>; empty when unknown.</param>
/// <param name="RequestedBy">Who asked (API user or key, dashboard user); null when not recorded.</param>
/// <param name="RequestedAt">The first step's time.</param>
/// <param name="ExpiresAt">When the collector stops accepting it; null when not recorded.</param>
/// <param name="State">The latest step's state.</param>
/// <param name="Failure">The latest step's failure, when it failed.</param>
/// <param name="Reason">The latest step's reason.</param>
/// <param name="ReportId">The report, once done.</param>
/// <param name="Finished">Whether the state is final (<c>done</c> or <c>failed</c>).</param>
/// <param name="Unanswered">Only <c>requested</c> and past its expiry: no collector took it (down, or no such host).</param>
/// <param name="Steps">Every step, oldest first.</param>
public sealed record CommandStatus(
    string Id,
    string JvmId,
    string Host,
    string Trigger,
    string? RequestedBy,
    DateTimeOffset RequestedAt,
    DateTimeOffset? ExpiresAt,
    string State,
    string? Failure,
    string? Reason,
    string? ReportId,
    bool Finished,
    bool Unanswered,
    IReadOnlyList<CommandStep> Steps);

/// <summary>
/// Collector commands and their results, stored in the measurement <c>apm.command</c> (one point per step; tags
/// <c>command_id</c>, <c>jvm_id</c>, <c>host</c>). The collector's results come through the aggregator; the API adds a
/// <c>requested</c> point when it sends a command, so a command is known from the moment it is accepted. One InfluxDB
/// request per call; commands are rare, so reading a JVM's 30 days of them stays small.
/// </summary>
public sealed partial class CommandQueries(InfluxQueryClient influx, InfluxWriter writer)
{
    /// <summary>The measurement (written by the aggregator from <c>CommandResult</c>, and by <see cref="RecordRequestedAsync"/>).</summary>
    public const string Measurement = "apm.command";

    /// <summary>The state this API records when it sends a command.</summary>
    public const string RequestedState = "requested";

    /// <summary>Most rows one query reads.</summary>
    private const int MaxRows = 5_000;

    /// <summary>How far back commands are read.</summary>
    public TimeSpan Lookback { get; init; } = TimeSpan.FromDays(30);

    /// <summary>Whether <paramref name="id"/> has the form of a command id (a UUID, with or without dashes); guards queries and paths.</summary>
    public static bool IsValidId(string? id) => id is not null && IdPattern().IsMatch(id);

    /// <summary>
    /// Records that <paramref name="command"/> was sent (state <c>requested</c>, at its issue time, with its expiry, trigger
    /// and requester): one point, so a replayed write overwrites itself.
    /// </summary>
    public Task RecordRequestedAsync(CollectorCommand command, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(command);
        var lines = new LineProtocolBuilder(512);
        lines.Measurement(Measurement).Tag("command_id", command.CommandId).Tag("host", command.TargetHost).Tag("jvm_id", command.JvmId)
            .Field("state", RequestedState)
            .Field("trigger", command.Trigger)
            .Field("alert_id", command.AlertId)
            .Field("requested_by", command.RequestedBy)
            .Field("expires_unix_ms", command.ExpiresUnixMs)
            .Timestamp(DateTimeOffset.FromUnixTimeMilliseconds(command.IssuedUnixMs));
        return writer.WriteAsync(lines, ct);
    }

    /// <summary>The command <paramref name="id"/> with every step, or null when nothing is stored for it. Throws <see cref="ArgumentException"/> on a malformed id.</summary>
    public async Task<CommandStatus?> GetAsync(string id, CancellationToken ct)
    {
        if (!IsValidId(id)) throw new ArgumentException($"'{id}' is not a command id.", nameof(id));
        var list = await QueryAsync($"{InfluxQl.QuoteIdentifier("command_id")} = {InfluxQl.QuoteString(id)}", ct).ConfigureAwait(false);
        return list.Count == 0 ? null : list[0];
    }

    /// <summary>The most recent <paramref name="limit"/> commands (of one JVM when <paramref name="jvmId"/> is given), newest first.</summary>
    public async Task<IReadOnlyList<CommandStatus>> ListAsync(string? jvmId, int limit, CancellationToken ct)
    {
        var list = await QueryAsync(string.IsNullOrEmpty(jvmId) ? null : $"{InfluxQl.QuoteIdentifier("jvm_id")} = {InfluxQl.QuoteString(jvmId)}", ct).ConfigureAwait(false);
        return list.Take(limit).ToList();
    }

    private async Task<List<CommandStatus>> QueryAsync(string? filter, CancellationToken ct)
    {
        var where = string.Create(CultureInfo.InvariantCulture, $"time > now() - {(long)Lookback.TotalSeconds}s");
        if (filter is not null) where += " AND " + filter;
        // Newest rows first so that the row cap keeps the recent commands; put back in time order below.
        var query = string.Create(CultureInfo.InvariantCulture, $"SELECT * FROM {InfluxQl.QuoteIdentifier(Measurement)} WHERE {where} ORDER BY time DESC LIMIT {MaxRows}");
        var result = await influx.QueryAsync(query, ct).ConfigureAwait(false);
        var byCommand = new Dictionary<string, List<(InfluxSeries Series, int Row)>>(StringComparer.Ordinal);
        foreach (var s in result.Series)
        {
            for (var row = s.Values.Count - 1; row >= 0; row--)
            {
                if (s.GetString(row, "command_id") is not { Length: > 0 } id) continue;
                if (!byCommand.TryGetValue(id, out var rows)) byCommand[id] = rows = [];
                rows.Add((s, row));
            }
        }

        var now = DateTimeOffset.UtcNow;
        var list = byCommand.Select(kv => Build(kv.Key, kv.Value, now)).ToList();
        list.Sort((a, b) => b.RequestedAt != a.RequestedAt ? b.RequestedAt.CompareTo(a.RequestedAt) : string.CompareOrdinal(a.Id, b.Id));
        return list;
    }

    private static CommandStatus Build(string id, List<(InfluxSeries Series, int Row)> rows, DateTimeOffset now)
    {
        string jvm = "", host = "", trigger = "";
        string? requestedBy = null;
        DateTimeOffset? expires = null;
        var steps = new List<CommandStep>(rows.Count);
        foreach (var (s, row) in rows)
        {
            jvm = s.GetString(row, "jvm_id") is { Length: > 0 } j ? j : jvm;
            host = s.GetString(row, "host") is { Length: > 0 } h ? h : host;
            trigger = s.GetString(row, "trigger") is { Length: > 0 } t ? t : trigger;
            requestedBy = s.GetString(row, "requested_by") is { Length: > 0 } by ? by : requestedBy;
            if (s.GetInt64(row, "expires_unix_ms") is { } e && e > 0) expires = DateTimeOffset.FromUnixTimeMilliseconds(e);
            steps.Add(new CommandStep(
                s.GetString(row, "state") ?? "unknown",
                DateTimeOffset.UnixEpoch.AddTicks((s.GetTime(row) ?? 0) / 100),
                Empty(s.GetString(row, "failure")),
                Empty(s.GetString(row, "reason")),
                Empty(s.GetString(row, "report_id"))));
        }

        var last = steps[^1];
        var finished = last.State is "done" or "failed";
        var unanswered = steps.TrueForAll(x => x.State == RequestedState) && expires is { } x && x < now;
        return new CommandStatus(id, jvm, host, trigger, requestedBy, steps[0].Time, expires, last.State, last.Failure, last.Reason,
            steps.LastOrDefault(x => x.ReportId is not null)?.ReportId, finished, unanswered, steps);
    }

    private static string? Empty(string? s) => string.IsNullOrEmpty(s) ? null : s;

    [GeneratedRegex("^[0-9A-Za-z][0-9A-Za-z-]{0,63}$")]
    private static partial Regex IdPattern();
}
