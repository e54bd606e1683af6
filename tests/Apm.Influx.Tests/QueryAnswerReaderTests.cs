using System.Globalization;
using System.Text;
using System.Text.Json;
using Apm.Influx;

namespace Apm.Influx.Tests;

/// <summary>
/// The token reader behind <see cref="InfluxQueryClient.Parse"/>, checked against System.Text.Json's
/// <see cref="JsonDocument"/> reading the same seeded random answers (the independent oracle), and on the answers'
/// edge cases.
/// </summary>
public class QueryAnswerReaderTests
{
    private static string RandomString(Random rng)
    {
        var pool = new[] { "a", "jvm_id", "host:1:2", "é", "\"", "\\", "<script>", "\u2028", "\t", "x y", "😀", "" };
        var sb = new StringBuilder();
        for (var i = rng.Next(0, 4); i > 0; i--) sb.Append(pool[rng.Next(pool.Length)]);
        return sb.ToString();
    }

    private static void WriteCell(Utf8JsonWriter w, Random rng)
    {
        switch (rng.Next(7))
        {
            case 0: w.WriteNumberValue(rng.NextInt64(long.MinValue, long.MaxValue)); break;
            case 1: w.WriteNumberValue(rng.NextDouble() * Math.Pow(10, rng.Next(-20, 20)) * (rng.Next(2) == 0 ? -1 : 1)); break;
            case 2: w.WriteNumberValue(rng.Next(-1000, 1000)); break;
            case 3: w.WriteStringValue(RandomString(rng)); break;
            case 4: w.WriteBooleanValue(rng.Next(2) == 0); break;
            case 5: w.WriteNullValue(); break;
            default: w.WriteRawValue(rng.Next(2) == 0 ? "1e300" : "-0.0"); break;
        }
    }

    private static byte[] RandomAnswer(Random rng)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteStartArray("results");
            for (var r = rng.Next(0, 4); r > 0; r--)
            {
                w.WriteStartObject();
                if (rng.Next(5) > 0) w.WriteNumber("statement_id", rng.Next(0, 10));
                if (rng.Next(6) == 0) w.WriteString("error", RandomString(rng));
                if (rng.Next(8) == 0) w.WriteStartArray("messages"); else w.WriteStartArray("series");
                for (var s = rng.Next(0, 4); s > 0; s--)
                {
                    w.WriteStartObject();
                    w.WriteString("name", RandomString(rng));
                    if (rng.Next(3) > 0)
                    {
                        w.WriteStartObject("tags");
                        for (var t = rng.Next(0, 3); t > 0; t--) w.WriteString("k" + t + RandomString(rng), RandomString(rng));
                        w.WriteEndObject();
                    }

                    var columns = rng.Next(1, 5);
                    w.WriteStartArray("columns");
                    for (var c = 0; c < columns; c++) w.WriteStringValue(c == 0 ? "time" : "c" + c + RandomString(rng));
                    w.WriteEndArray();
                    w.WriteStartArray("values");
                    for (var row = rng.Next(0, 6); row > 0; row--)
                    {
                        w.WriteStartArray();
                        for (var c = 0; c < columns; c++) WriteCell(w, rng);
                        w.WriteEndArray();
                    }

                    w.WriteEndArray();
                    if (rng.Next(4) == 0) w.WriteBoolean("partial", rng.Next(2) == 0);
                    w.WriteEndObject();
                }

                w.WriteEndArray();
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        return ms.ToArray();
    }

    [Fact]
    public void Two_thousand_random_answers_read_the_same_as_with_a_JSON_document()
    {
        var rng = new Random(20261203);
        var cells = 0;
        for (var i = 0; i < 2000; i++)
        {
            var json = RandomAnswer(rng);
            using var doc = JsonDocument.Parse(json);
            var results = doc.RootElement.GetProperty("results").EnumerateArray().ToList();
            InfluxQueryResult parsed;
            try
            {
                parsed = InfluxQueryClient.Parse(json);
            }
            catch (InfluxQueryException e)
            {
                throw new InvalidOperationException("answer " + i + " failed: " + e.Message + "\n" + Encoding.UTF8.GetString(json), e);
            }

            Assert.Equal(results.Count, parsed.Results.Count);
            for (var r = 0; r < results.Count; r++)
            {
                var expected = results[r];
                var actual = parsed.Results[r];
                Assert.Equal(expected.TryGetProperty("statement_id", out var id) ? id.GetInt32() : r, actual.StatementId);
                Assert.Equal(expected.TryGetProperty("error", out var err) ? err.GetString() : null, actual.Error);
                var series = expected.TryGetProperty("series", out var se) ? se.EnumerateArray().ToList() : [];
                Assert.Equal(series.Count, actual.Series.Count);
                for (var s = 0; s < series.Count; s++)
                {
                    var e = series[s];
                    var a = actual.Series[s];
                    Assert.Equal(e.GetProperty("name").GetString(), a.Name);
                    var tags = e.TryGetProperty("tags", out var t) ? t.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!) : [];
                    Assert.Equal(tags, a.Tags);
                    Assert.Equal(e.GetProperty("columns").EnumerateArray().Select(c => c.GetString()!), a.Columns);
                    Assert.Equal(e.TryGetProperty("partial", out var p) && p.GetBoolean(), a.Partial);
                    var rows = e.GetProperty("values").EnumerateArray().ToList();
                    Assert.Equal(rows.Count, a.Values.Count);
                    for (var row = 0; row < rows.Count; row++)
                    {
                        var expectedCells = rows[row].EnumerateArray().ToList();
                        Assert.Equal(expectedCells.Count, a.Values[row].Length);
                        for (var c = 0; c < expectedCells.Count; c++, cells++) AssertSame(expectedCells[c], a.Values[row][c], a, row, a.Columns[c]);
                    }
                }
            }
        }

        Assert.True(cells > 10_000, $"only {cells} cells compared");
    }

    private static void AssertSame(JsonElement expected, InfluxValue actual, InfluxSeries series, int row, string column)
    {
        Assert.Equal(expected.ValueKind, actual.ValueKind);
        switch (expected.ValueKind)
        {
            case JsonValueKind.Number:
                Assert.Equal(expected.GetDouble(), actual.GetDouble());
                Assert.Equal(expected.TryGetInt64(out var l), actual.TryGetInt64(out var l2));
                Assert.Equal(l, l2);
                Assert.Equal(expected.GetDouble(), series.GetDouble(row, column));
                Assert.Equal(expected.TryGetInt64(out var l3) ? l3 : null, series.GetInt64(row, column));
                // The text differs only in form: it reads back as the same number.
                Assert.Equal(expected.GetDouble(), double.Parse(series.GetString(row, column)!, CultureInfo.InvariantCulture));
                break;
            case JsonValueKind.String:
                Assert.Equal(expected.GetString(), actual.GetString());
                Assert.Equal(expected.GetString(), series.GetString(row, column));
                Assert.Null(series.GetDouble(row, column));
                break;
            case JsonValueKind.True or JsonValueKind.False:
                Assert.Equal(expected.GetBoolean(), actual.GetBoolean());
                Assert.Equal(expected.GetRawText(), series.GetString(row, column));
                break;
            default:
                Assert.Null(actual.GetString());
                Assert.Null(series.GetString(row, column));
                Assert.Null(series.GetDouble(row, column));
                break;
        }
    }

    [Fact]
    public void Wrong_kinds_throw_like_a_JSON_element_and_unknown_members_are_skipped()
    {
        var json = """
            {"results":[{"statement_id":3,"messages":[{"level":"warning","text":"x"}],"series":[{"name":"m","tags":{"jvm_id":"j","n":5},
            "columns":["time","v","s"],"values":[[1,2.5,"a"],[2,null,{"odd":[1]}]],"extra":{"a":[1,2]}}]},{"error":{"code":1}}],"other":true}
            """u8.ToArray();
        var result = InfluxQueryClient.Parse(json);
        var series = Assert.Single(result.Series);
        Assert.Equal(3, result.Results[0].StatementId);
        Assert.Equal(1, result.Results[1].StatementId);
        Assert.Equal("""{"code":1}""", result.Results[1].Error);
        Assert.Equal("5", series.Tags["n"]);
        Assert.Equal(2.5, series.GetDouble(0, "v"));
        Assert.Null(series.GetInt64(0, "v"));
        Assert.Null(series.GetDouble(1, "v"));
        Assert.Equal("""{"odd":[1]}""", series.GetString(1, "s"));
        Assert.Equal(2, series.GetTime(1));
        Assert.Throws<InvalidOperationException>(() => series.Values[0][2].GetDouble());
        Assert.Throws<InvalidOperationException>(() => series.Values[0][1].GetInt64());
        Assert.Throws<InvalidOperationException>(() => series.Values[0][0].GetString());
        Assert.Throws<InvalidOperationException>(() => series.Values[0][0].GetBoolean());

        var top = Assert.Throws<InfluxQueryException>(() => InfluxQueryClient.Parse("""{"error":"database not found: x"}"""u8.ToArray()));
        Assert.Equal("query failed: database not found: x", top.Message);
        foreach (var bad in new[] { "{} {}", "{\"results\":[1]}", "{\"results\":[{\"series\":[{\"values\":[5]}]}]}", "{\"results\":[{\"series\":[{\"columns\":{}}]}]}" })
        {
            var e = Assert.Throws<InfluxQueryException>(() => InfluxQueryClient.Parse(Encoding.UTF8.GetBytes(bad)));
            Assert.StartsWith("malformed query answer", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Every_prefix_of_an_answer_fails_with_a_clear_error()
    {
        var json = RandomAnswer(new Random(7));
        while (json.Length < 200) json = RandomAnswer(new Random(json.Length));
        for (var n = 0; n < json.Length; n++)
        {
            var e = Assert.Throws<InfluxQueryException>(() => InfluxQueryClient.Parse(json.AsMemory(0, n)));
            Assert.False(string.IsNullOrEmpty(e.Message));
        }
    }

    [Fact]
    public void A_sink_gets_each_statements_series_and_rows_in_order_with_repeated_texts_made_once()
    {
        var json = """
            {"results":[{"statement_id":0,"series":[
              {"name":"m","tags":{"jvm_id":"host:1:a"},"columns":["time","value"],"values":[[1,2],[2,"host:1:a"]]},
              {"name":"m","tags":{"jvm_id":"host:1:b"},"columns":["time","value"],"values":[[3,4.5]]}]},
            {"statement_id":1,"series":[{"name":"n","tags":{"jvm_id":"host:1:a"},"columns":["time","value"]}]},
            {"statement_id":2,"error":"no such measurement"}]}
            """u8.ToArray();
        var sink = new RecordingSink();
        QueryAnswerReader.Read(json, sink);
        Assert.Equal(
            [
                "series 0 m jvm_id=host:1:a time,value", "row 1 2", "row 2 host:1:a", "end False",
                "series 0 m jvm_id=host:1:b time,value", "row 3 4.5", "end False", "statement 0 ",
                "series 1 n jvm_id=host:1:a time,value", "end False", "statement 1 ", "statement 2 no such measurement",
            ],
            sink.Calls);
        // The JVM id of three series and a cell is one string, and so is each column name.
        Assert.Single(sink.Texts.Where(t => t == "host:1:a").Distinct(ReferenceEqualityComparer.Instance));
        Assert.Equal(3, sink.Texts.Count(t => t == "host:1:a"));
        Assert.Single(sink.Texts.Where(t => t == "value").Distinct(ReferenceEqualityComparer.Instance));
    }

    [Fact]
    public void Long_texts_are_read_whole_and_texts_with_escapes_are_shared_by_their_meaning()
    {
        var longText = new string('x', 1000);
        var json = Encoding.UTF8.GetBytes($$"""
            {"results":[{"series":[{"name":"m","tags":{"k":"a\u00e9\"b"},"columns":["time","v"],"values":[[1,"{{longText}}"],[2,"a\u00e9\"b"],[3,"a\u00e9\"b"]]}]}]}
            """);
        var sink = new RecordingSink();
        QueryAnswerReader.Read(json, sink);
        Assert.Contains("row 1 " + longText, sink.Calls);
        var escaped = sink.Texts.Where(t => t == "aé\"b").ToList();
        Assert.Equal(3, escaped.Count);
        Assert.Single(escaped.Distinct(ReferenceEqualityComparer.Instance));
    }

    [Fact]
    public void Tags_or_columns_after_the_values_are_a_malformed_answer()
    {
        foreach (var bad in new[]
                 {
                     """{"results":[{"series":[{"columns":["time"],"values":[[1]],"tags":{"a":"b"}}]}]}""",
                     """{"results":[{"series":[{"values":[[1]],"columns":["time"]}]}]}""",
                 })
        {
            var e = Assert.Throws<InfluxQueryException>(() => InfluxQueryClient.Parse(Encoding.UTF8.GetBytes(bad)));
            Assert.Contains("after its values", e.Message, StringComparison.Ordinal);
        }
    }

    /// <summary>Writes every callback as a line, and keeps every text it was given (tags, columns, string cells).</summary>
    private sealed class RecordingSink : QueryAnswerSink
    {
        public List<string> Calls { get; } = [];

        public List<string> Texts { get; } = [];

        public override void Series(int statement, string name, IReadOnlyDictionary<string, string> tags, IReadOnlyList<string> columns)
        {
            Texts.AddRange(tags.Values);
            Texts.AddRange(columns);
            Calls.Add($"series {statement} {name} {string.Join(";", tags.Select(t => t.Key + "=" + t.Value))} {string.Join(",", columns)}");
        }

        public override void Row(ReadOnlySpan<InfluxValue> cells)
        {
            var texts = new List<string>();
            foreach (var c in cells)
            {
                if (c.ValueKind == JsonValueKind.String) Texts.Add(c.GetString()!);
                texts.Add(c.ToString());
            }

            Calls.Add("row " + string.Join(" ", texts));
        }

        public override void SeriesEnd(bool partial) => Calls.Add("end " + partial);

        public override void StatementEnd(int statement, string? error) => Calls.Add($"statement {statement} {error}");
    }
}
