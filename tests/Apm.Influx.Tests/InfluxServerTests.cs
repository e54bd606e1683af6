using System.Net;
using System.Text;
using Apm.Influx;

namespace Apm.Influx.Tests;

/// <summary>Writes and queries against a real influxd.</summary>
public class InfluxServerTests(InfluxFixture influx) : IClassFixture<InfluxFixture>
{
    /// <summary>Strings a JVM or a user may hand us: class names with spaces, separators, quotes, newlines, unicode.</summary>
    public static readonly string[] Hostile =
    [
        "com.example.Foo$Bar", "[Lcom.example.Statement;", "class with spaces", "a,b,c", "k=v", "=", ",", " ", " leading",
        "quote\"d", "single'quote", "\"'", @"back\slash", "trailing\\", @"a\,b", @"a\ b", @"a\=b", @"\\double", "new\nline",
        "cr\r\nlf", "tab\there", "unicode é € 😀 日本語", "'; DROP DATABASE x; --", "#hash", "{\"json\":true}", "ends with space ",
    ];

    [Fact]
    public async Task Hostile_tag_values_and_string_fields_round_trip_through_influxd()
    {
        var options = await influx.NewDatabaseAsync("hostile");
        using var writer = new InfluxWriter(options);
        using var query = new InfluxQueryClient(options);
        var lp = new LineProtocolBuilder();
        for (var i = 0; i < Hostile.Length; i++)
        {
            lp.Measurement("hostile").Tag("cls", Hostile[i]).Tag("idx", i.ToString(System.Globalization.CultureInfo.InvariantCulture))
                .Field("name", Hostile[i]).Field("n", (long)i).Timestamp(1_000 + i);
        }

        await writer.WriteAsync(lp);
        Assert.Equal(Hostile.Length, writer.PointsWritten);

        for (var i = 0; i < Hostile.Length; i++)
        {
            // Read back by index: the stored tag and string field equal the input (newlines normalised to spaces).
            var byIndex = await query.QueryAsync($"SELECT \"name\", \"cls\" FROM \"hostile\" WHERE \"idx\" = '{i}'");
            var s = Assert.Single(byIndex.Series);
            Assert.Equal(LineProtocol.Normalize(Hostile[i]), s.GetString(0, "cls"));
            Assert.Equal(LineProtocol.NormalizeStringField(Hostile[i]), s.GetString(0, "name"));

            // And find it by value: the quoted string literal matches exactly one point.
            var byValue = await query.QueryAsync(
                $"SELECT \"n\" FROM \"hostile\" WHERE \"cls\" = {InfluxQl.QuoteString(LineProtocol.Normalize(Hostile[i]))}");
            var found = Assert.Single(byValue.Series);
            Assert.Equal(i, Assert.Single(found.Values)[found.ColumnIndex("n")].GetInt64());
        }
    }

    [Fact]
    public async Task Hostile_measurement_names_and_keys_round_trip_through_influxd()
    {
        var options = await influx.NewDatabaseAsync("hostile_names");
        using var writer = new InfluxWriter(options);
        using var query = new InfluxQueryClient(options);
        var usable = Hostile.Where(h => !LineProtocol.Normalize(h).StartsWith('#') && LineProtocol.Normalize(h).Trim().Length > 0).ToArray();
        var lp = new LineProtocolBuilder();
        foreach (var h in usable) lp.Measurement(h).Tag(h, "tagvalue").Field(h, 1L).Timestamp(5);
        await writer.WriteAsync(lp);

        var measurements = await query.QueryAsync("SHOW MEASUREMENTS");
        var names = Assert.Single(measurements.Series).Values.Select(r => r[0].GetString()).ToHashSet();
        foreach (var h in usable)
        {
            var name = LineProtocol.Normalize(h);
            Assert.Contains(name, names);
            var r = await query.QueryAsync($"SELECT * FROM {InfluxQl.QuoteIdentifier(name)}");
            var s = Assert.Single(r.Series);
            Assert.Equal(name, s.Name);
            Assert.Equal(1L, s.GetInt64(0, name));
            Assert.Equal(3, s.Columns.Count); // time, the field, and the tag of the same name (InfluxDB suffixes it with _1)
        }
    }

    [Fact]
    public async Task A_gzip_write_of_many_points_is_stored_and_counted()
    {
        var options = await influx.NewDatabaseAsync("gzip");
        options.BatchSize = 1000;
        using var writer = new InfluxWriter(options);
        var lp = new LineProtocolBuilder();
        const int n = 3500;
        for (var i = 0; i < n; i++)
        {
            lp.Measurement("jvm.memory.used").Tag("jvm", (i % 7).ToString(System.Globalization.CultureInfo.InvariantCulture))
                .Tag("pool", "G1 Old Gen").Field("bytes", (long)i * 1024).Field("ratio", i / 3.0).Timestamp(1_700_000_000_000_000_000 + i);
        }

        await writer.WriteAsync(lp);

        Assert.Equal(n, await InfluxFixture.CountAsync(options, "jvm.memory.used", "bytes"));
        Assert.Equal(n, writer.PointsWritten);
        Assert.Equal(4, writer.Batches); // 3,500 points at 1,000 a request
        Assert.Equal(0, writer.Retries);
        Assert.Equal(Encoding.UTF8.GetByteCount(lp.ToString()), writer.BytesWritten);
        Assert.True(writer.BytesSent * 4 < writer.BytesWritten, $"gzip sent {writer.BytesSent} of {writer.BytesWritten} bytes");

        using var query = new InfluxQueryClient(options);
        var last = Assert.Single((await query.QueryAsync("SELECT last(\"ratio\"), \"bytes\" FROM \"jvm.memory.used\"")).Series);
        Assert.Equal(1_700_000_000_000_000_000 + n - 1, last.GetTime(0));
        Assert.Equal((n - 1) / 3.0, last.GetDouble(0, "last"));
    }

    [Fact]
    public async Task Writing_the_same_points_twice_leaves_one_point_each()
    {
        var options = await influx.NewDatabaseAsync("idem");
        using var writer = new InfluxWriter(options);
        var lp = new LineProtocolBuilder();
        for (var i = 0; i < 100; i++) lp.Measurement("gc").Tag("jvm", "1").Field("count", (long)i).Timestamp(10_000 + i);
        var lines = lp.ToString();

        await writer.WriteAsync(lines);
        await writer.WriteAsync(Encoding.UTF8.GetBytes(lines));

        Assert.Equal(200, writer.PointsWritten); // sent twice
        Assert.Equal(100, await InfluxFixture.CountAsync(options, "gc", "count")); // stored once
    }

    [Fact]
    public async Task A_refused_write_surfaces_the_server_message_and_is_not_retried()
    {
        var options = await influx.NewDatabaseAsync("refused");
        using var writer = new InfluxWriter(options);
        await writer.WriteAsync("m f=1i 1\n");

        // A field type conflict (integer, then string) is a partial write: 400 with the reason.
        var conflict = await Assert.ThrowsAsync<InfluxWriteException>(() => writer.WriteAsync("m f=\"text\" 2\n"));
        Assert.Equal(HttpStatusCode.BadRequest, conflict.StatusCode);
        Assert.True(conflict.IsRejected);
        Assert.Contains("field type conflict", conflict.ServerError, StringComparison.Ordinal);
        Assert.Contains("field type conflict", conflict.Message, StringComparison.Ordinal);

        var syntax = await Assert.ThrowsAsync<InfluxWriteException>(() => writer.WriteAsync("no fields here\n"));
        Assert.Contains("unable to parse", syntax.ServerError, StringComparison.Ordinal);

        Assert.Equal(0, writer.Retries);
        Assert.Equal(2, writer.Failures);
        Assert.Equal(1, writer.PointsWritten);
    }

    [Fact]
    public async Task Queries_report_statement_errors_and_missing_databases()
    {
        var options = await influx.NewDatabaseAsync("qerr");
        using var query = new InfluxQueryClient(options);
        var e = await Assert.ThrowsAsync<InfluxQueryException>(() => query.QueryAsync("SELEKT * FROM x"));
        Assert.Contains("error parsing query", e.Message, StringComparison.Ordinal);

        var missing = await Assert.ThrowsAsync<InfluxQueryException>(() => query.QueryAsync("SELECT * FROM x", "no_such_db_here"));
        Assert.Contains("database not found", missing.Message, StringComparison.Ordinal);

        var empty = await query.QueryAsync("SELECT * FROM nothing_here");
        Assert.Empty(empty.Series);
        Assert.Equal(2, query.Failures);
    }

    [Fact]
    public async Task Ping_and_ensure_database_work_and_ensure_is_repeatable()
    {
        var options = influx.Server.Options("ensure_twice");
        using var writer = new InfluxWriter(options);
        Assert.True(await writer.PingAsync());
        await writer.EnsureDatabaseAsync();
        await writer.EnsureDatabaseAsync();
        using var query = new InfluxQueryClient(options);
        var dbs = Assert.Single((await query.QueryAsync("SHOW DATABASES", database: null)).Series);
        Assert.Contains(dbs.Values, r => r[0].GetString() == "ensure_twice");

        using var nowhere = new InfluxWriter(new InfluxOptions { Url = new Uri("http://127.0.0.1:" + Apm.Testing.FreePort.Next()), Timeout = TimeSpan.FromSeconds(2) });
        Assert.False(await nowhere.PingAsync());
    }
}
