using System.Net;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Apm.Influx;

/// <summary>
/// Runs InfluxQL through the v1 <c>POST /query</c> (form body, so long queries fit; epoch=ns so times are
/// integers). Connection errors, 5xx and 429 are retried like writes. Answers larger than
/// <see cref="InfluxOptions.MaxQueryResponseBytes"/> fail instead of exhausting memory. Thread-safe.
/// </summary>
public sealed class InfluxQueryClient : IDisposable
{
    private readonly InfluxHttp _http;
    private long _queries;
    private long _failures;

    /// <summary>Creates a client. Pass an <see cref="HttpClient"/> to share connections; otherwise the client owns one.</summary>
    public InfluxQueryClient(InfluxOptions options, HttpClient? httpClient = null, ILogger<InfluxQueryClient>? logger = null)
        => _http = new InfluxHttp(options, httpClient, (ILogger?)logger ?? NullLogger.Instance);

    /// <summary>Queries answered.</summary>
    public long Queries => Interlocked.Read(ref _queries);

    /// <summary>Queries that failed.</summary>
    public long Failures => Interlocked.Read(ref _failures);

    /// <summary>Runs <paramref name="influxql"/> against the configured database.</summary>
    public Task<InfluxQueryResult> QueryAsync(string influxql, CancellationToken cancellationToken = default)
        => QueryAsync(influxql, _http.Options.Database, cancellationToken);

    /// <summary>
    /// Runs <paramref name="influxql"/> (one or more statements separated by ';') against <paramref name="database"/>
    /// (null: none, for SHOW DATABASES). Throws <see cref="InfluxQueryException"/> when the server or any statement fails.
    /// Build the text with <see cref="InfluxQl"/> when it contains outside values.
    /// </summary>
    public async Task<InfluxQueryResult> QueryAsync(string influxql, string? database, CancellationToken cancellationToken = default)
    {
        var collect = new QueryAnswerReader.CollectingSink();
        await QueryAsync(influxql, database, collect, cancellationToken).ConfigureAwait(false);
        return collect.ToResult();
    }

    /// <summary>
    /// Runs <paramref name="influxql"/> against the configured database and reads the answer straight into
    /// <paramref name="sink"/>, series by series, without building <see cref="InfluxQueryResult"/> objects: for answers
    /// that a caller folds into a shape of its own. Throws <see cref="InfluxQueryException"/> when the server or any
    /// statement fails; the sink may then have seen part of the answer, and should be dropped.
    /// </summary>
    public Task QueryAsync(string influxql, QueryAnswerSink sink, CancellationToken cancellationToken = default)
        => QueryAsync(influxql, _http.Options.Database, sink, cancellationToken);

    private async Task QueryAsync(string influxql, string? database, QueryAnswerSink sink, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(influxql);
        ArgumentNullException.ThrowIfNull(sink);
        var uri = _http.BuildUri("/query", ("db", database), ("rp", _http.Options.RetentionPolicy), ("epoch", "ns"));
        try
        {
            using var answer = await _http.SendAsync(
                () => new HttpRequestMessage(HttpMethod.Post, uri) { Content = new FormUrlEncodedContent([new("q", influxql)]) },
                "query", _http.Options.MaxQueryResponseBytes, static () => { },
                static (m, s, _, i) => new InfluxQueryException(m, s, i), cancellationToken).ConfigureAwait(false);
            if (!answer.IsSuccess)
                throw new InfluxQueryException($"InfluxDB refused the query with HTTP {answer.StatusText}: {answer.Error}", answer.Status);
            var errors = new StatementErrors(sink);
            QueryAnswerReader.Read(answer.Body.Span, errors);
            if (errors.First is { } failed) throw new InfluxQueryException($"statement {failed.Statement} failed: {failed.Error}", answer.Status);
            Interlocked.Increment(ref _queries);
        }
        catch (InfluxQueryException)
        {
            Interlocked.Increment(ref _failures);
            throw;
        }
    }

    /// <summary>Disposes the owned HTTP client.</summary>
    public void Dispose() => _http.Dispose();

    /// <summary>Parses a /query JSON answer. Throws <see cref="InfluxQueryException"/> on malformed JSON or shapes.</summary>
    public static InfluxQueryResult Parse(ReadOnlyMemory<byte> json) => QueryAnswerReader.Parse(json.Span);

    /// <summary>Passes an answer on to the caller's sink and keeps its first statement error.</summary>
    private sealed class StatementErrors(QueryAnswerSink inner) : QueryAnswerSink
    {
        public (int Statement, string Error)? First { get; private set; }

        public override void Series(int statement, string name, IReadOnlyDictionary<string, string> tags, IReadOnlyList<string> columns)
            => inner.Series(statement, name, tags, columns);

        public override void Row(ReadOnlySpan<InfluxValue> cells) => inner.Row(cells);

        public override void SeriesEnd(bool partial) => inner.SeriesEnd(partial);

        public override void StatementEnd(int statement, string? error)
        {
            if (error is not null) First ??= (statement, error);
            inner.StatementEnd(statement, error);
        }
    }

    /// <summary>The first statement error in a /query answer, or null.</summary>
    internal static string? FirstStatementError(ReadOnlyMemory<byte> json)
    {
        try
        {
            return Parse(json).Results.FirstOrDefault(r => r.Error is not null)?.Error;
        }
        catch (InfluxQueryException e)
        {
            return e.Message;
        }
    }
}

/// <summary>The answer to a query: one result per statement.</summary>
public sealed record InfluxQueryResult(IReadOnlyList<InfluxStatementResult> Results)
{
    /// <summary>Every series of every statement, in order.</summary>
    public IEnumerable<InfluxSeries> Series => Results.SelectMany(r => r.Series);
}

/// <summary>One statement's result. Series is empty when nothing matched.</summary>
public sealed record InfluxStatementResult(int StatementId, IReadOnlyList<InfluxSeries> Series, string? Error);

/// <summary>
/// One series: its measurement name, the GROUP BY tags, column names and rows. Values are as the JSON gave them
/// (numbers, strings, booleans, null); the time column holds nanoseconds since the epoch.
/// </summary>
public sealed record InfluxSeries(
    string Name,
    IReadOnlyDictionary<string, string> Tags,
    IReadOnlyList<string> Columns,
    IReadOnlyList<InfluxValue[]> Values,
    bool Partial)
{
    /// <summary>Index of <paramref name="column"/>, or -1.</summary>
    public int ColumnIndex(string column) => QueryAnswerSink.IndexOf(Columns, column);

    /// <summary>The value as a double; null when the column is missing, the value is null or not a number.</summary>
    public double? GetDouble(int row, string column)
    {
        var e = Cell(row, column);
        return e is { ValueKind: JsonValueKind.Number } n ? n.GetDouble() : null;
    }

    /// <summary>The value as an integer; null when missing, null, or not an integral number.</summary>
    public long? GetInt64(int row, string column) => Cell(row, column)?.AsInt64();

    /// <summary>The value as text (strings as they are, other values as JSON); null when missing or null.</summary>
    public string? GetString(int row, string column) => Cell(row, column)?.AsText();

    /// <summary>The time column in nanoseconds (queries use epoch=ns).</summary>
    public long? GetTime(int row) => GetInt64(row, "time");

    private InfluxValue? Cell(int row, string column)
    {
        var i = ColumnIndex(column);
        if (i < 0 || (uint)row >= (uint)Values.Count) return null;
        var r = Values[row];
        return i < r.Length ? r[i] : null;
    }
}
