using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace Apm.Influx;

/// <summary>
/// Receives a v1 /query answer as it is read, series by series and row by row, so a caller that folds the answer
/// into its own shape (the fleet page: a value per JVM) never holds it as objects. The collections and the row span
/// passed in are the reader's own and are reused for the next series or row: copy what must outlive the call.
/// Callbacks come in answer order: for each statement its series (each <see cref="Series"/>, its rows, then
/// <see cref="SeriesEnd"/>), then <see cref="StatementEnd"/>.
/// </summary>
public abstract class QueryAnswerSink
{
    /// <summary>
    /// A series starts. <paramref name="statement"/> is the statement's <c>statement_id</c> (InfluxDB writes it before
    /// the series), or its position in the answer when it has none.
    /// </summary>
    public virtual void Series(int statement, string name, IReadOnlyDictionary<string, string> tags, IReadOnlyList<string> columns)
    {
    }

    /// <summary>One row of the current series, a cell per column.</summary>
    public virtual void Row(ReadOnlySpan<InfluxValue> cells)
    {
    }

    /// <summary>The current series ended; <paramref name="partial"/> when InfluxDB cut it short.</summary>
    public virtual void SeriesEnd(bool partial)
    {
    }

    /// <summary>The index of <paramref name="name"/> in <paramref name="columns"/>, or -1.</summary>
    public static int IndexOf(IReadOnlyList<string> columns, string name)
    {
        ArgumentNullException.ThrowIfNull(columns);
        for (var i = 0; i < columns.Count; i++)
        {
            if (columns[i] == name) return i;
        }

        return -1;
    }

    /// <summary>A statement's result ended, with its final id and its error (null when it succeeded).</summary>
    public virtual void StatementEnd(int statement, string? error)
    {
    }
}

/// <summary>
/// Reads a v1 /query JSON answer token by token into a <see cref="QueryAnswerSink"/>. A fleet-wide answer runs to
/// megabytes: a <see cref="JsonDocument"/> over it rented a token index about as large as the answer, and objects per
/// series and row cost about ten times the answer's size. Repeated texts (tag keys and values, column names, short
/// string cells such as a JVM id that recurs in every statement) are made into strings once per answer.
/// Within a series the members come in InfluxDB's order (name, tags, columns, values, partial); tags or columns
/// after the values are a malformed answer.
/// </summary>
internal static class QueryAnswerReader
{
    /// <summary>Texts up to this many characters are shared within an answer; longer ones are rarely repeated.</summary>
    private const int SharedTextMaxChars = 128;

    /// <summary>At most this many distinct shared texts per answer: past it, texts are made as they come.</summary>
    private const int SharedTextMaxCount = 200_000;

    /// <summary>Parses the whole answer into objects (the general-purpose shape of <see cref="InfluxQueryResult"/>).</summary>
    public static InfluxQueryResult Parse(ReadOnlySpan<byte> json)
    {
        var collect = new CollectingSink();
        Read(json, collect);
        return collect.ToResult();
    }

    /// <summary>
    /// Reads <paramref name="json"/> into <paramref name="sink"/>. Throws <see cref="InfluxQueryException"/> on malformed
    /// JSON or shapes, and on an answer-level error; statement errors go to <see cref="QueryAnswerSink.StatementEnd"/>.
    /// </summary>
    public static void Read(ReadOnlySpan<byte> json, QueryAnswerSink sink)
    {
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 64 });
        var state = new ReadState(sink);
        try
        {
            if (!reader.Read()) throw new InfluxQueryException("malformed query answer: it is empty");
            if (reader.TokenType != JsonTokenType.StartObject) throw new InfluxQueryException("query answer is not a JSON object");
            string? error = null;
            while (NextProperty(ref reader))
            {
                if (reader.ValueTextEquals("results"u8))
                {
                    reader.Read();
                    ReadResults(ref reader, state);
                }
                else if (reader.ValueTextEquals("error"u8))
                {
                    reader.Read();
                    error = Text(ref reader, state);
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            if (reader.Read()) throw new InfluxQueryException("malformed query answer: more after the JSON object");
            if (error is not null) throw new InfluxQueryException("query failed: " + error);
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

    private static void ReadResults(ref Utf8JsonReader reader, ReadState state)
    {
        Expect(ref reader, JsonTokenType.StartArray, "results");
        var position = 0;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            Expect(ref reader, JsonTokenType.StartObject, "a result");
            var id = position;
            string? error = null;
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
                    error = Text(ref reader, state);
                }
                else if (reader.ValueTextEquals("series"u8))
                {
                    reader.Read();
                    Expect(ref reader, JsonTokenType.StartArray, "series");
                    while (reader.Read() && reader.TokenType != JsonTokenType.EndArray) ReadSeries(ref reader, state, id);
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            state.Sink.StatementEnd(id, error);
            position++;
        }
    }

    private static void ReadSeries(ref Utf8JsonReader reader, ReadState state, int statement)
    {
        Expect(ref reader, JsonTokenType.StartObject, "a series");
        var name = "";
        state.Tags.Clear();
        state.Columns.Clear();
        var started = false;
        var partial = false;
        while (NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("name"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.String) name = state.Shared(ref reader);
                else reader.Skip();
            }
            else if (reader.ValueTextEquals("tags"u8))
            {
                if (started) throw new InvalidOperationException("a series' tags come after its values");
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    reader.Skip();
                    continue;
                }

                while (NextProperty(ref reader))
                {
                    var key = state.Shared(ref reader);
                    reader.Read();
                    state.Tags[key] = Text(ref reader, state);
                }
            }
            else if (reader.ValueTextEquals("columns"u8))
            {
                if (started) throw new InvalidOperationException("a series' columns come after its values");
                reader.Read();
                Expect(ref reader, JsonTokenType.StartArray, "columns");
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    // A number here throws: malformed.
                    state.Columns.Add(reader.TokenType == JsonTokenType.Null ? "" : reader.TokenType == JsonTokenType.String ? state.Shared(ref reader) : reader.GetString()!);
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

                if (!started) state.Sink.Series(statement, name, state.Tags, state.Columns);
                started = true;
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    Expect(ref reader, JsonTokenType.StartArray, "a row");
                    state.Row.Clear();
                    while (reader.Read() && reader.TokenType != JsonTokenType.EndArray) state.Row.Add(Value(ref reader, state));
                    state.Sink.Row(CollectionsMarshal.AsSpan(state.Row));
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

        if (!started) state.Sink.Series(statement, name, state.Tags, state.Columns);
        state.Sink.SeriesEnd(partial);
    }

    private static InfluxValue Value(ref Utf8JsonReader reader, ReadState state) => reader.TokenType switch
    {
        JsonTokenType.Number => reader.TryGetInt64(out var l) ? InfluxValue.FromInteger(l) : InfluxValue.FromDouble(reader.GetDouble()),
        JsonTokenType.String => InfluxValue.FromString(state.Shared(ref reader)),
        JsonTokenType.True => InfluxValue.FromBoolean(true),
        JsonTokenType.False => InfluxValue.FromBoolean(false),
        JsonTokenType.Null => InfluxValue.Null,
        JsonTokenType.StartObject => InfluxValue.FromRawJson(JsonValueKind.Object, Raw(ref reader)),
        JsonTokenType.StartArray => InfluxValue.FromRawJson(JsonValueKind.Array, Raw(ref reader)),
        _ => throw new InvalidOperationException("unexpected " + reader.TokenType + " in a row"),
    };

    /// <summary>A string's text, or any other value's JSON (as <see cref="JsonElement.ToString"/> gives them).</summary>
    private static string Text(ref Utf8JsonReader reader, ReadState state) => reader.TokenType switch
    {
        JsonTokenType.String => state.Shared(ref reader),
        JsonTokenType.StartObject or JsonTokenType.StartArray => Raw(ref reader),
        _ => Encoding.UTF8.GetString(reader.ValueSpan),
    };

    private static string Raw(ref Utf8JsonReader reader)
    {
        using var doc = JsonDocument.ParseValue(ref reader);
        return doc.RootElement.GetRawText();
    }

    /// <summary>What one read reuses: the current series' tags, columns and row, and the answer's shared texts.</summary>
    private sealed class ReadState(QueryAnswerSink sink)
    {
        private readonly Dictionary<string, string> _texts = new(StringComparer.Ordinal);
        private Dictionary<string, string>.AlternateLookup<ReadOnlySpan<char>> _lookup;
        private bool _hasLookup;

        public QueryAnswerSink Sink { get; } = sink;

        public Dictionary<string, string> Tags { get; } = new(StringComparer.Ordinal);

        public List<string> Columns { get; } = [];

        public List<InfluxValue> Row { get; } = [];

        /// <summary>The current string token's text: the answer's one string of it when it is short.</summary>
        public string Shared(ref Utf8JsonReader reader)
        {
            // Unescaped text is never longer in UTF-16 code units than its UTF-8 bytes (answers are read from one span).
            if (reader.ValueSpan.Length > SharedTextMaxChars * 3) return reader.GetString()!;
            Span<char> chars = stackalloc char[SharedTextMaxChars * 3];
            var n = reader.CopyString(chars);
            if (n > SharedTextMaxChars) return new string(chars[..n]);
            if (!_hasLookup)
            {
                _lookup = _texts.GetAlternateLookup<ReadOnlySpan<char>>();
                _hasLookup = true;
            }

            if (_lookup.TryGetValue(chars[..n], out var text)) return text;
            text = new string(chars[..n]);
            if (_texts.Count < SharedTextMaxCount) _texts[text] = text;
            return text;
        }
    }

    /// <summary>Builds the whole <see cref="InfluxQueryResult"/>: the shape for callers that look at the answer at random.</summary>
    internal sealed class CollectingSink : QueryAnswerSink
    {
        private string _name = "";
        private Dictionary<string, string> _tags = [];
        private string[] _columns = [];
        private List<InfluxValue[]> _rows = [];
        private List<InfluxSeries> _series = [];

        private readonly List<InfluxStatementResult> _results = [];

        public InfluxQueryResult ToResult() => new(_results);

        public override void Series(int statement, string name, IReadOnlyDictionary<string, string> tags, IReadOnlyList<string> columns)
        {
            _name = name;
            _tags = new Dictionary<string, string>(tags, StringComparer.Ordinal);
            // Consecutive series nearly always have the same columns: share the array.
            if (!columns.SequenceEqual(_columns, StringComparer.Ordinal)) _columns = [.. columns];
            _rows = [];
        }

        public override void Row(ReadOnlySpan<InfluxValue> cells) => _rows.Add(cells.ToArray());

        public override void SeriesEnd(bool partial) => _series.Add(new InfluxSeries(_name, _tags, _columns, _rows, partial));

        public override void StatementEnd(int statement, string? error)
        {
            _results.Add(new InfluxStatementResult(statement, _series, error));
            _series = [];
        }
    }
}
