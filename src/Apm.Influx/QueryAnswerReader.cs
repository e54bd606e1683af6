using System.Text;
using System.Text.Json;

namespace Apm.Influx;

/// <summary>
/// Reads a v1 /query JSON answer token by token into results, series and <see cref="InfluxValue"/> cells. A fleet-wide
/// answer runs to megabytes: a <see cref="JsonDocument"/> over it rented a token index about as large as the answer
/// and cloned each series' rows into documents of their own; this reader keeps only what the result holds.
/// </summary>
internal static class QueryAnswerReader
{
    public static InfluxQueryResult Parse(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 64 });
        try
        {
            if (!reader.Read()) throw new InfluxQueryException("malformed query answer: it is empty");
            if (reader.TokenType != JsonTokenType.StartObject) throw new InfluxQueryException("query answer is not a JSON object");
            List<InfluxStatementResult>? results = null;
            string? error = null;
            while (NextProperty(ref reader))
            {
                if (reader.ValueTextEquals("results"u8))
                {
                    reader.Read();
                    results = ReadResults(ref reader);
                }
                else if (reader.ValueTextEquals("error"u8))
                {
                    reader.Read();
                    error = Text(ref reader);
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            if (reader.Read()) throw new InfluxQueryException("malformed query answer: more after the JSON object");
            if (error is not null) throw new InfluxQueryException("query failed: " + error);
            return new InfluxQueryResult(results ?? []);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new InfluxQueryException("malformed query answer: " + e.Message, e);
        }
    }

    /// <summary>Moves to the next property name of the current object; false at its end.</summary>
    private static bool NextProperty(ref Utf8JsonReader reader)
    {
        reader.Read();
        return reader.TokenType switch
        {
            JsonTokenType.PropertyName => true,
            JsonTokenType.EndObject => false,
            _ => throw new InvalidOperationException("expected a property, found " + reader.TokenType),
        };
    }

    private static void Expect(ref Utf8JsonReader reader, JsonTokenType type, string what)
    {
        if (reader.TokenType != type) throw new InvalidOperationException($"{what} is {reader.TokenType}, not {type}");
    }

    private static List<InfluxStatementResult> ReadResults(ref Utf8JsonReader reader)
    {
        Expect(ref reader, JsonTokenType.StartArray, "results");
        var results = new List<InfluxStatementResult>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            Expect(ref reader, JsonTokenType.StartObject, "a result");
            int? id = null;
            string? error = null;
            var series = new List<InfluxSeries>();
            while (NextProperty(ref reader))
            {
                if (reader.ValueTextEquals("statement_id"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var i)) id = i;
                    else reader.Skip();
                }
                else if (reader.ValueTextEquals("error"u8))
                {
                    reader.Read();
                    error = Text(ref reader);
                }
                else if (reader.ValueTextEquals("series"u8))
                {
                    reader.Read();
                    Expect(ref reader, JsonTokenType.StartArray, "series");
                    while (reader.Read() && reader.TokenType != JsonTokenType.EndArray) series.Add(ReadSeries(ref reader));
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            results.Add(new InfluxStatementResult(id ?? results.Count, series, error));
        }

        return results;
    }

    private static InfluxSeries ReadSeries(ref Utf8JsonReader reader)
    {
        Expect(ref reader, JsonTokenType.StartObject, "a series");
        var name = "";
        var tags = new Dictionary<string, string>(StringComparer.Ordinal);
        var columns = new List<string>();
        var rows = new List<InfluxValue[]>();
        var partial = false;
        var row = new List<InfluxValue>();
        while (NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("name"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.String) name = reader.GetString()!;
                else reader.Skip();
            }
            else if (reader.ValueTextEquals("tags"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    reader.Skip();
                    continue;
                }

                while (NextProperty(ref reader))
                {
                    var key = reader.GetString()!;
                    reader.Read();
                    tags[key] = Text(ref reader);
                }
            }
            else if (reader.ValueTextEquals("columns"u8))
            {
                reader.Read();
                Expect(ref reader, JsonTokenType.StartArray, "columns");
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    columns.Add(reader.TokenType == JsonTokenType.Null ? "" : reader.GetString()!); // a number here throws: malformed
                }
            }
            else if (reader.ValueTextEquals("values"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartArray)
                {
                    reader.Skip();
                    continue;
                }

                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    Expect(ref reader, JsonTokenType.StartArray, "a row");
                    row.Clear();
                    while (reader.Read() && reader.TokenType != JsonTokenType.EndArray) row.Add(Value(ref reader));
                    rows.Add([.. row]);
                }
            }
            else if (reader.ValueTextEquals("partial"u8))
            {
                reader.Read();
                partial = reader.TokenType == JsonTokenType.True;
                reader.Skip();
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        return new InfluxSeries(name, tags, columns, rows, partial);
    }

    private static InfluxValue Value(ref Utf8JsonReader reader) => reader.TokenType switch
    {
        JsonTokenType.Number => reader.TryGetInt64(out var l) ? InfluxValue.FromInteger(l) : InfluxValue.FromDouble(reader.GetDouble()),
        JsonTokenType.String => InfluxValue.FromString(reader.GetString()!),
        JsonTokenType.True => InfluxValue.FromBoolean(true),
        JsonTokenType.False => InfluxValue.FromBoolean(false),
        JsonTokenType.Null => InfluxValue.Null,
        JsonTokenType.StartObject => InfluxValue.FromRawJson(JsonValueKind.Object, Raw(ref reader)),
        JsonTokenType.StartArray => InfluxValue.FromRawJson(JsonValueKind.Array, Raw(ref reader)),
        _ => throw new InvalidOperationException("unexpected " + reader.TokenType + " in a row"),
    };

    /// <summary>A string's text, or any other value's JSON (as <see cref="JsonElement.ToString"/> gives them).</summary>
    private static string Text(ref Utf8JsonReader reader) => reader.TokenType switch
    {
        JsonTokenType.String => reader.GetString()!,
        JsonTokenType.StartObject or JsonTokenType.StartArray => Raw(ref reader),
        _ => Encoding.UTF8.GetString(reader.ValueSpan),
    };

    private static string Raw(ref Utf8JsonReader reader)
    {
        using var doc = JsonDocument.ParseValue(ref reader);
        return doc.RootElement.GetRawText();
    }
}
