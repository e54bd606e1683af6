namespace Apm.Kafka;

/// <summary>Kafka's rules for topic names, checked before a name reaches a broker or native code.</summary>
public static class TopicNames
{
    /// <summary>Kafka's limit (Topic.MAX_NAME_LENGTH in the broker).</summary>
    public const int MaxLength = 249;

    /// <summary>Throws <see cref="ArgumentException"/> with the reason when <paramref name="name"/> is not a legal topic name.</summary>
    public static void Validate(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length == 0 || name.Length > MaxLength)
        {
            throw new ArgumentException($"A topic name has 1 to {MaxLength} characters; got {name.Length}.", nameof(name));
        }

        if (name is "." or "..")
        {
            throw new ArgumentException("A topic cannot be named '.' or '..'.", nameof(name));
        }

        foreach (var c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
            {
                throw new ArgumentException(
                    $"Topic name '{name}' has the character U+{(int)c:X4}; only ASCII letters, digits, '.', '_' and '-' are legal.",
                    nameof(name));
            }
        }
    }
}
