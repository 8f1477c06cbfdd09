"""EXIF orientation of JPEG files, read and applied with TensorFlow ops (so it also runs inside an
exported serving graph).

Phones store pixels as the sensor saw them and record in the EXIF `Orientation` tag (0x0112)
how to turn them upright; TensorFlow's JPEG decoder ignores the tag, so without this a portrait
photo arrives rotated. The tag values 1-8 mean (PIL's `ImageOps.exif_transpose` does the same):
1 as stored, 2 mirrored left-right, 3 rotated 180°, 4 mirrored top-bottom, 5 transposed,
6 rotated 90° clockwise, 7 transversed, 8 rotated 90° counter-clockwise.

Only JPEG files are read (their EXIF block sits in an APP1 segment); other formats count as
orientation 1.
"""

import tensorflow as tf

# The EXIF block is at most one APP1 segment: 64 KiB.
_WINDOW = 65536
# IFD0 entries looked at; cameras write about a dozen, the orientation among the first.
_MAX_ENTRIES = 64
_ORIENTATION_TAG = 0x0112


def decode_upright(contents):
    """Encoded image bytes (a scalar string) → uint8 `[height, width, 3]`, EXIF orientation applied.

    Decodes as the image-folder loader does (`tf.io.decode_image`, 3 channels, first GIF frame).
    """
    image = tf.io.decode_image(contents, channels=3, dtype=tf.uint8, expand_animations=False)
    return apply_orientation(image, orientation(contents))


def orientation(contents):
    """The EXIF orientation (int32 scalar in 1..8) of encoded image bytes; 1 when there is none."""
    is_jpeg = tf.equal(tf.strings.substr(contents, 0, 3), b"\xff\xd8\xff")
    # The TIFF header follows the APP1 segment's "Exif\0\0" identifier.
    parts = tf.strings.split(tf.reshape(contents, [1]), sep="Exif\x00\x00", maxsplit=1).values
    marker = tf.strings.length(parts[0])
    found = tf.logical_and(
        tf.logical_and(is_jpeg, tf.equal(tf.size(parts), 2)),
        # Accept the identifier only where an APP1 segment begins: ff e1, 2 length bytes.
        tf.equal(tf.strings.substr(contents, tf.maximum(marker - 4, 0), 2), b"\xff\xe1"),
    )
    return tf.cond(found, lambda: _read_tag(contents, marker + 6), lambda: tf.constant(1))


def _read_tag(contents, tiff_start):
    """The orientation in the TIFF block starting at byte `tiff_start`, or 1."""
    block = tf.strings.substr(contents, tiff_start, _WINDOW)
    data = tf.cast(tf.io.decode_raw(block, tf.uint8), tf.int32)
    # Zero padding keeps every read below in range, whatever offsets the file claims.
    data = tf.pad(data, [[0, _WINDOW + 12 * _MAX_ENTRIES + 16 - tf.size(data)]])
    little = tf.equal(data[0], ord("I"))

    def u16(i):
        a, b = tf.gather(data, i), tf.gather(data, i + 1)
        return tf.where(little, a + 256 * b, 256 * a + b)

    def u32(i):
        low, high = u16(i), u16(i + 2)
        return tf.where(little, low + 65536 * high, 65536 * low + high)

    ifd = tf.clip_by_value(u32(4), 0, _WINDOW)
    count = u16(ifd)
    entries = ifd + 2 + 12 * tf.range(_MAX_ENTRIES)
    match = tf.logical_and(tf.range(_MAX_ENTRIES) < count, tf.equal(u16(entries), _ORIENTATION_TAG))
    value = tf.reduce_max(tf.where(match, u16(entries + 8), 0))
    valid = tf.logical_and(tf.reduce_any(match), tf.logical_and(value >= 1, value <= 8))
    return tf.where(valid, value, 1)


def apply_orientation(image, orientation):
    """Turns `image` `[height, width, channels]` upright according to EXIF `orientation` (1..8)."""
    transpose = lambda x: tf.transpose(x, [1, 0, 2])  # noqa: E731  (swaps rows and columns)
    branches = [
        lambda: image,
        lambda: tf.reverse(image, [1]),
        lambda: tf.image.rot90(image, 2),
        lambda: tf.reverse(image, [0]),
        lambda: transpose(image),
        lambda: tf.image.rot90(image, 3),
        lambda: tf.image.rot90(transpose(image), 2),
        lambda: tf.image.rot90(image, 1),
    ]
    index = tf.clip_by_value(tf.cast(orientation, tf.int32) - 1, 0, 7)
    return tf.switch_case(index, branches)
