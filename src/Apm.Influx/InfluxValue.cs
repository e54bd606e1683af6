using System.Globalization;
using System.Text.Json;

namespace Apm.Influx;

/// <summary>
/// One cell of a query answer: a number, a string, a boolean or null, as InfluxDB's JSON gave it. Read straight from
/// the answer, so a cell costs no JSON document. The accessors follow <see cref="JsonElement"/>'s: asking for the
/// wrong kind throws <see cref="InvalidOperationException"/>.
/// </summary>
public readonly struct InfluxValue : IEquatable<InfluxValue>
{
    private readonly string? _text;
    private readonly double _number;
    private readonly long _integer;
    private readonly bool _isInteger;

    private InfluxValue(JsonValueKind kind, string? text, double number, long integer, bool isInteger)
    {
        ValueKind = kind;
        _text = text;
        _number = number;
        _integer = integer;
        _isInteger = isInteger;
    }

    /// <summary>Number, String, True, False or Null (Object or Array only for a value InfluxDB never sends, kept as its JSON text).</summary>
    public JsonValueKind ValueKind { get; }

    /// <summary>A JSON null.</summary>
    public static InfluxValue Null => new(JsonValueKind.Null, null, 0, 0, false);

    /// <summary>A string.</summary>
    public static InfluxValue FromString(string value) => new(JsonValueKind.String, value, 0, 0, false);

    /// <summary>A boolean.</summary>
    public static InfluxValue FromBoolean(bool value) => new(value ? JsonValueKind.True : JsonValueKind.False, null, 0, 0, false);

    /// <summary>A number that is integral and fits a long.</summary>
    public static InfluxValue FromInteger(long value) => new(JsonValueKind.Number, null, value, value, true);

    /// <summary>A number.</summary>
    public static InfluxValue FromDouble(double value) => new(JsonValueKind.Number, null, value, 0, false);

    /// <summary>An object or array, kept as its JSON text.</summary>
    internal static InfluxValue FromRawJson(JsonValueKind kind, string json) => new(kind, json, 0, 0, false);

    /// <summary>The number as a double.</summary>
    public double GetDouble() => ValueKind == JsonValueKind.Number ? _number : throw Wrong("a number");

    /// <summary>The number as a long; throws when it is not integral or does not fit.</summary>
    public long GetInt64() => TryGetInt64(out var v) ? v : throw Wrong("an integral number");

    /// <summary>The number as a long when it is integral and fits.</summary>
    public bool TryGetInt64(out long value)
    {
        value = _integer;
        return ValueKind == JsonValueKind.Number ? _isInteger : throw Wrong("a number");
    }

    /// <summary>The string, or null for a JSON null.</summary>
    public string? GetString() => ValueKind switch
    {
        JsonValueKind.String => _text,
        JsonValueKind.Null => null,
        _ => throw Wrong("a string"),
    };

    /// <summary>The boolean.</summary>
    public bool GetBoolean() => ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => throw Wrong("a boolean"),
    };

    /// <summary>The value as JSON text (numbers in the shortest form that reads back the same).</summary>
    public string GetRawText() => ValueKind switch
    {
        JsonValueKind.String => JsonSerializer.Serialize(_text),
        JsonValueKind.Number => _isInteger ? _integer.ToString(CultureInfo.InvariantCulture) : _number.ToString("R", CultureInfo.InvariantCulture),
        JsonValueKind.True => "true",
        JsonValueKind.False => "false",
        JsonValueKind.Null => "null",
        _ => _text ?? "",
    };

    /// <summary>Strings as they are, other values as JSON (like <see cref="JsonElement.ToString"/>).</summary>
    /// <summary>Strings as they are, other values as JSON, null for null (as <see cref="InfluxSeries.GetString"/>).</summary>
    public string? AsText() => ValueKind switch
    {
        JsonValueKind.String => _text,
        JsonValueKind.Null => null,
        _ => GetRawText(),
    };

    /// <summary>The value when it is an integral number, else null (as <see cref="InfluxSeries.GetInt64"/>).</summary>
    public long? AsInt64() => ValueKind == JsonValueKind.Number && _isInteger ? _integer : null;

    public override string ToString() => ValueKind == JsonValueKind.String ? _text ?? "" : GetRawText();

    /// <inheritdoc/>
    public bool Equals(InfluxValue other) =>
        ValueKind == other.ValueKind && _isInteger == other._isInteger && _integer == other._integer
        && _number.Equals(other._number) && string.Equals(_text, other._text, StringComparison.Ordinal);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is InfluxValue other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(ValueKind, _integer, _number, _text);

    /// <summary>Value equality.</summary>
    public static bool operator ==(InfluxValue left, InfluxValue right) => left.Equals(right);

    /// <summary>Value inequality.</summary>
    public static bool operator !=(InfluxValue left, InfluxValue right) => !left.Equals(right);

    private InvalidOperationException Wrong(string expected) =>
        new($"the value is {ValueKind.ToString().ToLowerInvariant()}, not {expected}");
}
