"""The paper form 《株洲市“十大能手”评选推荐表》 as a grid, shared by the sample forms and the
review pack, which both lay a candidate out the way the bureau prints it."""

# The whole form as one table: 7 columns; each entry is (row, label column, field, (first, last) value column).
FORM_LAYOUT = (
    (0, 0, "name", (1, 1)), (0, 2, "sex", (3, 3)), (0, 4, "birth", (5, 5)),
    (1, 0, "ethnicity", (1, 1)), (1, 2, "native_place", (3, 3)), (1, 4, "political_status", (5, 5)),
    (2, 0, "employer_post", (1, 5)),
    (3, 0, "home_address", (1, 3)), (3, 4, "phone", (5, 6)),
    (4, 0, "honours", (1, 6)),
    (5, 0, "deeds", (1, 6)),
    (6, 0, "recommender", (1, 6)), (7, 0, "discipline", (1, 6)),
    (8, 0, "member_unit", (1, 6)), (9, 0, "approval", (1, 6)),
)

# The form as the bureau's notice distributes it: two tables on two pages. Table 1 (7 columns,
# the photo in column 6 down rows 0–2) ends with a 主要事迹(600字以内) row; table 2 (2 columns)
# opens with 主要事迹(600字以内) again, then the four opinion boxes.
NOTICE_TABLE_1 = FORM_LAYOUT[:11]
NOTICE_TABLE_2 = (
    (0, 0, "deeds", (1, 1)),
    (1, 0, "recommender", (1, 1)), (2, 0, "discipline", (1, 1)),
    (3, 0, "member_unit", (1, 1)), (4, 0, "approval", (1, 1)),
)
