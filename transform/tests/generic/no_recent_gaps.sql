{#- Fails on every gap longer than max_gap_minutes between consecutive
    distinct values of `column_name` within the window_hours before its
    newest value: a missed scheduled run leaves such a hole. -#}
{% test no_recent_gaps(model, column_name, max_gap_minutes, window_hours) %}
with recent as (
    select distinct {{ column_name }} as at
    from {{ model }}
    where {{ column_name }} >= (
        select max({{ column_name }}) - interval '{{ window_hours }} hours' from {{ model }}
    )
),

steps as (
    select lag(at) over (order by at) as gap_start, at as gap_end
    from recent
)

select gap_start, gap_end, gap_end - gap_start as gap
from steps
where gap_end - gap_start > interval '{{ max_gap_minutes }} minutes'
{% endtest %}
